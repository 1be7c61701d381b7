/**
 * The "Publish model" dialog: pick a model from the kernel (or a saved model
 * file), name it, confirm the task and labels, pick an input example, then
 * "Check" (the schema and a test prediction, from the kernel) and "Publish"
 * (the kernel packages and uploads it; the registry numbers the version).
 * Every error shows in the dialog in plain words; text goes in as text only.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { Kernel } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { el, errorBox } from '../sharing/dom';
import { historyVersion, modelsChanged } from './api';
import {
  KernelProblem,
  listCandidates,
  previewChoice,
  publishChoice,
  type IPublished
} from './kernel';
import {
  candidateLine,
  exampleLine,
  type ICandidate,
  type IChoice,
  type IListing,
  type IPreview,
  nameProblem,
  parseLabels,
  suggestName,
  TASKS
} from './model';

const FILE_PREFIX = 'file:';

function field(
  label: string,
  control: HTMLElement,
  hint = ''
): HTMLLabelElement {
  const node = el('label', 'mlfactory-PublishModel-field');
  node.appendChild(el('span', 'mlfactory-PublishModel-label', label));
  node.appendChild(control);
  if (hint) {
    node.appendChild(el('span', 'mlfactory-PublishModel-hint', hint));
  }
  return node;
}

function option(value: string, text: string): HTMLOptionElement {
  const o = el('option', '', text);
  o.value = value;
  return o;
}

function table(headers: string[], rows: string[][]): HTMLTableElement {
  const t = el('table', 'mlfactory-PublishModel-table');
  const head = el('tr');
  for (const h of headers) {
    head.appendChild(el('th', '', h));
  }
  t.appendChild(head);
  for (const row of rows) {
    const tr = el('tr');
    for (const cell of row) {
      tr.appendChild(el('td', '', cell));
    }
    t.appendChild(tr);
  }
  return t;
}

/** The dialog's body; it runs Check and Publish itself and keeps the dialog open. */
export class PublishModelForm extends Widget {
  constructor(
    private _kernel: Kernel.IKernelConnection,
    private _notebookPath: string,
    listing: IListing
  ) {
    super();
    this.addClass('mlfactory-PublishModel');
    this.node.dataset.testid = 'mlfactory-publish-model-form';
    this._listing = listing;

    this._source = el('select', 'jp-mod-styled');
    this._source.dataset.testid = 'mlfactory-publish-model-source';
    for (const m of listing.models) {
      this._source.appendChild(option(m.name, candidateLine(m)));
    }
    for (const f of listing.files) {
      this._source.appendChild(
        option(`${FILE_PREFIX}${f}`, `Saved file: ${f}`)
      );
    }

    this._name = el('input', 'jp-mod-styled');
    this._name.dataset.testid = 'mlfactory-publish-model-name';
    this._name.maxLength = 63;
    this._task = el('select', 'jp-mod-styled');
    this._task.dataset.testid = 'mlfactory-publish-model-task';
    this._task.appendChild(option('', 'Choose…'));
    for (const t of TASKS) {
      this._task.appendChild(option(t, t));
    }
    this._labels = el('input', 'jp-mod-styled');
    this._labels.dataset.testid = 'mlfactory-publish-model-labels';
    this._labels.placeholder = 'e.g. setosa, versicolor, virginica';
    this._example = el('select', 'jp-mod-styled');
    this._example.dataset.testid = 'mlfactory-publish-model-example';
    for (const e of listing.examples) {
      this._example.appendChild(option(e.name, exampleLine(e)));
    }
    this._description = el('textarea', 'jp-mod-styled');
    this._description.rows = 2;
    this._description.maxLength = 4000;
    this._description.dataset.testid = 'mlfactory-publish-model-description';
    this._note = el('input', 'jp-mod-styled');
    this._note.maxLength = 2000;
    this._note.dataset.testid = 'mlfactory-publish-model-note';

    this._check = el(
      'button',
      'jp-Button jp-mod-styled jp-mod-reject',
      'Check'
    );
    this._check.type = 'button';
    this._check.dataset.testid = 'mlfactory-publish-model-check';
    this._check.addEventListener('click', () => void this.check());
    this._publish = el(
      'button',
      'jp-Button jp-mod-styled jp-mod-accept',
      'Publish'
    );
    this._publish.type = 'button';
    this._publish.disabled = true;
    this._publish.dataset.testid = 'mlfactory-publish-model-publish';
    this._publish.addEventListener('click', () => void this.publish());
    const actions = el('div', 'mlfactory-PublishModel-actions');
    actions.append(this._check, this._publish);

    this._status = el('div', 'mlfactory-PublishModel-status');
    this._status.setAttribute('role', 'status');
    this._status.dataset.testid = 'mlfactory-publish-model-status';
    this._result = el('div', 'mlfactory-PublishModel-result');
    this._result.dataset.testid = 'mlfactory-publish-model-result';

    this.node.append(
      field('Model', this._source, 'From this notebook’s kernel'),
      field('Name', this._name, 'Lowercase letters, digits, - and _'),
      field('Task', this._task),
      field('Label names', this._labels, 'Comma-separated, in class order'),
      field('Input example', this._example, 'The schema is inferred from it'),
      field('Description', this._description),
      field('Version note', this._note),
      actions,
      this._status,
      this._result
    );

    for (const input of [
      this._source,
      this._name,
      this._task,
      this._labels,
      this._example,
      this._description
    ]) {
      input.addEventListener('input', () => this._changed());
      input.addEventListener('change', () => this._changed());
    }
    this._source.addEventListener('change', () => this._prefill());
    this._prefill();
  }

  /** The choice as entered. */
  choice(): IChoice {
    const source = this._source.value;
    const labels = parseLabels(this._labels.value);
    const choice: IChoice = {
      name: this._name.value.trim(),
      task: this._task.value,
      example: this._example.value,
      description: this._description.value,
      note: this._note.value,
      notebook_path: this._notebookPath
    };
    if (source.startsWith(FILE_PREFIX)) {
      choice.file = source.slice(FILE_PREFIX.length);
    } else {
      choice.model = source;
    }
    if (labels.length && this._task.value !== 'regression') {
      choice.labels = labels;
    }
    return choice;
  }

  /** Ask the kernel for the schema and a test prediction; true when it worked. */
  async check(): Promise<boolean> {
    const choice = this.choice();
    const problem = nameProblem(choice.name);
    if (problem) {
      this._fail(problem);
      return false;
    }
    const turn = ++this._turn;
    this._busy('Checking in the kernel…');
    try {
      const answer = await previewChoice(this._kernel, choice);
      if (turn !== this._turn) {
        return false;
      }
      if (!answer.ok) {
        this._fail(answer.error);
        return false;
      }
      this._showPreview(answer);
      this._checked = true;
      this._publish.disabled = false;
      this._say('Checked. Publish makes it a new version.');
      return true;
    } catch (error) {
      this._fail(kernelError(error));
      return false;
    } finally {
      this._idle();
    }
  }

  async publish(): Promise<void> {
    if (!this._checked && !(await this.check())) {
      return;
    }
    const choice = this.choice();
    this._busy('Publishing: the kernel packages the model and uploads it…');
    const turn = ++this._turn;
    try {
      const version = await historyVersion(this._notebookPath);
      if (version) {
        choice.history_version = version;
      }
      const answer = await publishChoice(this._kernel, choice);
      if (turn !== this._turn) {
        return;
      }
      if (!answer.ok) {
        this._fail(answer.error);
        return;
      }
      this._showPublished(answer);
      modelsChanged.emit();
    } catch (error) {
      this._fail(kernelError(error));
    } finally {
      this._idle();
    }
  }

  private _prefill(): void {
    const source = this._source.value;
    const found: ICandidate | undefined = this._listing.models.find(
      m => m.name === source
    );
    const base = source.startsWith(FILE_PREFIX)
      ? (source.slice(FILE_PREFIX.length).split('/').pop() ?? '').replace(
          /\.[^.]*$/,
          ''
        )
      : source;
    this._name.value = suggestName(base);
    this._task.value = found?.task ?? '';
    this._labels.value =
      found?.task === 'classification' ? found.labels.join(', ') : '';
    this._changed();
  }

  private _changed(): void {
    this._checked = false;
    this._publish.disabled = true;
    this._turn++;
    const problem = nameProblem(this._name.value.trim());
    this._name.setCustomValidity(problem);
    this._name.title = problem;
  }

  private _showPreview(p: IPreview): void {
    this._result.replaceChildren(
      el('h4', '', 'Input schema'),
      table(
        ['input', 'type'],
        p.inputs.map(i => [i.name, i.datatype])
      ),
      el(
        'p',
        '',
        `Outputs: ${p.outputs.join(', ')} · decision rule: ${p.decision_rule}` +
          (p.labels.length ? ` · labels: ${p.labels.join(', ')}` : '')
      ),
      el('h4', '', 'Test prediction on the first rows'),
      table(p.prediction.headers, p.prediction.rows)
    );
    this._result
      .querySelectorAll('table')[1]
      ?.setAttribute('data-testid', 'mlfactory-publish-model-prediction');
  }

  private _showPublished(answer: IPublished): void {
    const { model, version } = answer.published;
    const done = el(
      'p',
      'mlfactory-PublishModel-done',
      `Published ${model} version ${version.version}. It is served within seconds; the Models panel has its URLs and snippets.`
    );
    done.dataset.testid = 'mlfactory-publish-model-done';
    this._result.replaceChildren(done);
    this._status.textContent = '';
    this._status.classList.remove('mlfactory-error');
    this.published = answer;
  }

  private _busy(text: string): void {
    this._check.disabled = true;
    this._publish.disabled = true;
    this._say(text);
  }

  private _idle(): void {
    this._check.disabled = false;
    this._publish.disabled = !this._checked;
  }

  private _say(text: string): void {
    this._status.textContent = text;
    this._status.classList.remove('mlfactory-error');
  }

  private _fail(text: string): void {
    this._checked = false;
    this._status.replaceChildren(
      errorBox(text, 'mlfactory-publish-model-error')
    );
    this._status.classList.add('mlfactory-error');
  }

  /** The registry's answer after a publish here, for the caller. */
  published: IPublished | null = null;

  private _listing: IListing;
  private _source: HTMLSelectElement;
  private _name: HTMLInputElement;
  private _task: HTMLSelectElement;
  private _labels: HTMLInputElement;
  private _example: HTMLSelectElement;
  private _description: HTMLTextAreaElement;
  private _note: HTMLInputElement;
  private _check: HTMLButtonElement;
  private _publish: HTMLButtonElement;
  private _status: HTMLDivElement;
  private _result: HTMLDivElement;
  private _checked = false;
  private _turn = 0;
}

function kernelError(error: unknown): string {
  if (error instanceof KernelProblem) {
    return error.message;
  }
  if (error instanceof Error && error.message) {
    return `The kernel could not be asked: ${error.message}`;
  }
  return 'The kernel could not be asked. Is it running?';
}

/**
 * List the kernel's models and open the dialog; what was published, or null.
 * `kernel` is the notebook's; `notebookPath` is recorded as provenance.
 */
export async function publishModel(
  kernel: Kernel.IKernelConnection | null | undefined,
  notebookPath: string,
  openModels: () => void
): Promise<IPublished | null> {
  if (!kernel) {
    await showDialog({
      title: 'Publish model',
      body: 'Start this notebook’s kernel and train a model first: Publish lists the models in the running kernel.',
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
    return null;
  }
  let listing: IListing;
  try {
    const answer = await listCandidates(kernel);
    if (!answer.ok) {
      throw new KernelProblem(answer.error);
    }
    listing = answer;
  } catch (error) {
    await showDialog({
      title: 'Publish model',
      body: kernelError(error),
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
    return null;
  }
  if (!listing.models.length && !listing.files.length) {
    await showDialog({
      title: 'Publish model',
      body: 'No model in this notebook’s kernel yet: fit a scikit-learn estimator (or define a torch module or a predict function), run its cell, then press Publish again. A saved .joblib or .pkl file in this folder works too.',
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
    return null;
  }
  const form = new PublishModelForm(kernel, notebookPath, listing);
  const result = await showDialog({
    title: 'Publish model',
    body: form,
    buttons: [
      Dialog.cancelButton({ label: 'Close' }),
      Dialog.okButton({ label: 'Show in Models panel' })
    ],
    hasClose: true
  });
  if (result.button.accept) {
    openModels();
  }
  return form.published;
}
