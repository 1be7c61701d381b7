/**
 * The "Settings" part of the History panel: which readable text copy is
 * kept next to each notebook, and how often versions are made automatically.
 */
import {
  errorText,
  type IHistorySettings,
  type Pairing,
  requestHistory
} from './api';
import { button, div, feedback, input, labelled, section } from './dom';

export const MAX_AUTOSAVE_MINUTES = 24 * 60;

const PAIRINGS: [Pairing, string][] = [
  ['py:percent', 'Python script, percent cells (.py)'],
  ['py:light', 'Python script, light format (.py)'],
  ['md', 'Markdown (.md)'],
  ['none', 'No text copy']
];

/** The minutes typed, or null when they are not a number in range. */
export function parseMinutes(text: string): number | null {
  const minutes = Number(text);
  if (
    text.trim() === '' ||
    !Number.isFinite(minutes) ||
    minutes < 0 ||
    minutes > MAX_AUTOSAVE_MINUTES
  ) {
    return null;
  }
  return minutes;
}

export class SettingsSection {
  constructor(options: { saved: (settings: IHistorySettings) => void }) {
    this._saved = options.saved;
    this.node = section(
      'Settings',
      'mlfactory-HistoryPanel-settings',
      'mlfactory-history-settings'
    );
    const form = document.createElement('form');
    form.className = 'mlfactory-HistoryPanel-form';
    this._pairing = document.createElement('select');
    this._pairing.className = 'jp-mod-styled';
    this._pairing.name = 'pairing';
    this._pairing.dataset.testid = 'mlfactory-history-pairing';
    for (const [value, label] of PAIRINGS) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      this._pairing.append(option);
    }
    this._autosave = input('number', 'Automatic version every', 'autosave');
    this._autosave.min = '0';
    this._autosave.max = String(MAX_AUTOSAVE_MINUTES);
    this._autosave.step = 'any';
    const save = button('Save settings', null, 'accept');
    save.type = 'submit';
    this._result = div('mlfactory-HistoryPanel-feedback');
    this._result.setAttribute('role', 'status');
    form.append(
      labelled('Text copy next to each notebook', this._pairing),
      labelled(
        'Automatic version when saving, at most every … minutes (0: never)',
        this._autosave
      ),
      save,
      this._result
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._save(save);
    });
    this.node.append(form);
  }

  readonly node: HTMLDetailsElement;

  fill(settings: IHistorySettings): void {
    this._pairing.value = settings.pairing;
    this._autosave.value = String(settings.autosave_minutes);
  }

  private async _save(save: HTMLButtonElement): Promise<void> {
    const minutes = parseMinutes(this._autosave.value);
    if (minutes === null) {
      feedback(
        this._result,
        `Enter a number of minutes from 0 (never) to ${MAX_AUTOSAVE_MINUTES}.`,
        true
      );
      return;
    }
    save.disabled = true;
    try {
      const settings = await requestHistory<IHistorySettings>('settings', {
        method: 'PUT',
        json: {
          pairing: this._pairing.value as Pairing,
          autosave_minutes: minutes
        }
      });
      this.fill(settings);
      this._saved(settings);
      feedback(this._result, 'Settings saved.');
    } catch (error) {
      feedback(
        this._result,
        errorText(error, 'Could not save the settings.'),
        true
      );
    } finally {
      save.disabled = false;
    }
  }

  private readonly _saved: (settings: IHistorySettings) => void;
  private readonly _pairing: HTMLSelectElement;
  private readonly _autosave: HTMLInputElement;
  private readonly _result: HTMLElement;
}
