/**
 * The Publish view: submit a component folder for review, see pending
 * submissions and, for reviewers, approve or reject them with a note.
 */
import { visitedOwner, visitingLine } from '../handler';
import type { IComponentsAPI } from './api';
import { button, errorBox, h, messageOf } from './dom';
import type { ISubmission, ReviewDecision } from './types';

export class PublishView {
  readonly node: HTMLElement;

  constructor(api: IComponentsAPI) {
    this._api = api;
    this._path = h('input', {
      className: 'jp-mod-styled mlfactory-Components-path',
      testid: 'components-publish-path',
      attrs: {
        type: 'text',
        placeholder: 'folder/with/component.yaml',
        'aria-label': 'Component folder, relative to the server root'
      }
    });
    this._path.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        void this.publish(this._path.value);
      }
    });
    this._message = h('div', { attrs: { 'aria-live': 'polite' } });
    this._list = h('div', { testid: 'components-submissions' });
    this.node = h(
      'div',
      { className: 'mlfactory-Components-publish' },
      h('p', {
        className: 'mlfactory-Components-muted',
        text: 'Submit a component folder (component.yaml, source, README, test) for review.'
      }),
      h(
        'div',
        { className: 'mlfactory-Components-publishForm' },
        this._path,
        button('Publish', () => void this.publish(this._path.value), {
          kind: 'accept',
          testid: 'components-publish'
        })
      ),
      this._message,
      h('h4', { text: 'Pending submissions' }),
      this._list
    );
  }

  /** Submit `path` (a folder relative to the server root) for review. */
  async publish(path: string): Promise<ISubmission | null> {
    path = path.trim().replace(/^\/+/, '');
    if (!path) {
      this._message.replaceChildren(
        errorBox(null, 'Give the folder that holds component.yaml.')
      );
      return null;
    }
    this._path.value = path;
    this._message.replaceChildren(
      h('p', { className: 'mlfactory-loading', text: `Submitting ${path}…` })
    );
    try {
      const { submission } = await this._api.publish(path);
      this._message.replaceChildren(
        h('p', {
          className: 'mlfactory-Components-success',
          text: `Submitted ${submission.name}@${submission.version} for review.`
        })
      );
      void this.load();
      return submission;
    } catch (error) {
      this._message.replaceChildren(
        errorBox(error, `Could not publish ${path}.`)
      );
      return null;
    }
  }

  /** Fetch the pending submissions (again). */
  async load(): Promise<void> {
    this._list.replaceChildren(
      h('p', { className: 'mlfactory-loading', text: 'Loading…' })
    );
    // Publishing and the submissions list are the owner's (owner-only routes).
    const owner = await visitedOwner();
    if (owner !== null) {
      this._list.replaceChildren(
        h('p', {
          className: 'mlfactory-Components-muted',
          testid: 'mlfactory-visiting',
          text: `${visitingLine(owner)}: only ${owner} can publish from it or see its submissions.`
        })
      );
      return;
    }
    try {
      const data = await this._api.submissions('pending');
      this._render(data.submissions ?? [], data.can_review === true);
    } catch (error) {
      // e.g. 503 when no hub service is configured: say so, keep the form.
      this._list.replaceChildren(
        errorBox(error, 'Could not load the submissions.')
      );
    }
  }

  private _render(submissions: ISubmission[], canReview: boolean): void {
    if (!submissions.length) {
      this._list.replaceChildren(h('p', { text: 'None pending.' }));
      return;
    }
    this._list.replaceChildren(
      h(
        'ul',
        { className: 'mlfactory-Components-sourceList' },
        ...submissions.map(s =>
          h(
            'li',
            { testid: 'components-submission' },
            h('code', { text: `${s.name}@${s.version}` }),
            h('div', {
              className: 'mlfactory-Components-muted',
              text: `by ${s.owner} · ${s.submitted_at}`
            }),
            canReview ? this._reviewControls(s) : null
          )
        )
      )
    );
  }

  private _reviewControls(s: ISubmission): HTMLElement {
    // Approving covers the upload whose files were read here: the server refuses it
    // (409) if the author uploaded again since.
    let revision: string | null = null;
    const files = h('div', { className: 'mlfactory-Components-files' });
    const read = button(
      'Read files',
      () => {
        read.disabled = true;
        this._api
          .submission(s.id)
          .then(({ submission }) => {
            revision = submission.revision;
            files.replaceChildren(
              ...Object.entries(submission.contents ?? {}).map(([name, text]) =>
                h(
                  'details',
                  { testid: 'components-submission-file' },
                  h('summary', { text: name }),
                  h('pre', { text })
                )
              )
            );
            approve.disabled = false;
            approve.title = '';
          })
          .catch(error => {
            files.replaceChildren(
              errorBox(error, `Could not load the files: ${messageOf(error)}`)
            );
            read.disabled = false;
          });
      },
      { testid: 'components-submission-read' }
    );
    const note = h('input', {
      className: 'jp-mod-styled',
      attrs: {
        type: 'text',
        placeholder: 'Note',
        'aria-label': `Review note for ${s.name}@${s.version}`
      }
    });
    const status = h('div', { attrs: { 'aria-live': 'polite' } });
    const decide = async (decision: ReviewDecision) => {
      approve.disabled = reject.disabled = true;
      try {
        await this._api.review(s.id, decision, note.value, revision);
        void this.load();
      } catch (error) {
        status.replaceChildren(
          errorBox(error, `Could not ${decision}: ${messageOf(error)}`)
        );
        approve.disabled = reject.disabled = false;
      }
    };
    const approve = button('Approve', () => void decide('approve'), {
      kind: 'accept',
      title: 'Read the files first'
    });
    approve.disabled = true;
    const reject = button('Reject', () => void decide('reject'), {
      kind: 'reject'
    });
    return h(
      'div',
      { className: 'mlfactory-Components-review' },
      read,
      files,
      note,
      h('div', {}, approve, reject),
      status
    );
  }

  private readonly _api: IComponentsAPI;
  private readonly _path: HTMLInputElement;
  private readonly _message: HTMLElement;
  private readonly _list: HTMLElement;
}
