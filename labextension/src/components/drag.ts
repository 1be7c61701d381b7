/**
 * Press-to-drag for the results list: a press that travels a few pixels
 * becomes a drag of a code cell holding the component's snippet (dropped on a
 * notebook, it is inserted there); the click that ends a drag is swallowed.
 */
import { dragCodeCell } from './notebook';

/** Pointer travel (px) that turns a press on a result into a drag. */
const DRAG_THRESHOLD = 5;

export namespace PressToDrag {
  export interface IPress {
    /** The pointerdown that started it. */
    event: PointerEvent;
    /** Shown on the drag image. */
    label: string;
    /** The code the dragged cell holds; asked for at the press so a drag has it. */
    code: Promise<string>;
    /** The drag's source (the panel). */
    source: { isDisposed: boolean };
    onError: (error: unknown) => void;
  }
}

export class PressToDrag {
  /** Watch a press: past the threshold it starts the drag. */
  press(options: PressToDrag.IPress): void {
    const { event, label, code, source, onError } = options;
    code.catch(() => undefined);
    const press = {
      x: event.clientX,
      y: event.clientY,
      released: false,
      move: (e: PointerEvent) => {
        if (
          Math.abs(e.clientX - press.x) + Math.abs(e.clientY - press.y) <
          DRAG_THRESHOLD
        ) {
          return;
        }
        this.end();
        this._suppressClick = true;
        void code.then(text => {
          if (press.released || source.isDisposed) {
            return;
          }
          return dragCodeCell(text, label, e.clientX, e.clientY, source).then(
            () => undefined
          );
        }, onError);
        document.addEventListener('pointerup', release, true);
      },
      up: () => {
        press.released = true;
        this.end();
      }
    };
    const release = () => {
      press.released = true;
      document.removeEventListener('pointerup', release, true);
      // A click follows a press that did not become a drag; let it through later.
      window.setTimeout(() => (this._suppressClick = false), 0);
    };
    this.end();
    this._press = press;
    document.addEventListener('pointermove', press.move, true);
    document.addEventListener('pointerup', press.up, true);
  }

  /** Whether a click is the end of a drag, to be ignored (asked once per click). */
  swallowClick(): boolean {
    const swallow = this._suppressClick;
    this._suppressClick = false;
    return swallow;
  }

  /** Stop watching the current press, if any. */
  end(): void {
    if (this._press) {
      document.removeEventListener('pointermove', this._press.move, true);
      document.removeEventListener('pointerup', this._press.up, true);
      this._press = null;
    }
  }

  private _press: {
    move: (e: PointerEvent) => void;
    up: () => void;
  } | null = null;
  private _suppressClick = false;
}
