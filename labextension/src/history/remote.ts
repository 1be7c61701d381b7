/**
 * The "Remote" part of the History panel: where versions are backed up,
 * the credentials to reach it (a token is sent, never shown again), and
 * push and pull with their results and conflicts.
 */
import {
  errorText,
  conflictsOf,
  HistoryError,
  type IHistoryStatus,
  type IPullResult,
  type IPushResult,
  requestHistory
} from './api';
import {
  button,
  div,
  feedback,
  fileList,
  input,
  labelled,
  paragraph,
  section
} from './dom';
import { visitedOwner } from '../handler';
import { displayRemoteUrl } from './versions';

export namespace RemoteSection {
  export interface IOptions {
    /** Fetch the workspace status again (after the remote changed). */
    reloadStatus: () => Promise<void>;
    /**
     * Called after a pull changed the workspace; resolves with the open
     * notebooks that could not be reloaded (they have unsaved edits).
     */
    pulled: () => Promise<string[]>;
  }
}

export class RemoteSection {
  constructor(options: RemoteSection.IOptions) {
    this._options = options;
    this.node = section(
      'Remote',
      'mlfactory-HistoryPanel-remote',
      'mlfactory-history-remote'
    );
    // The remote, push and pull are the owner's (owner-only routes): not for visitors.
    void visitedOwner().then(owner => {
      this.node.hidden = owner !== null;
    });
    this._current = paragraph('', 'mlfactory-HistoryPanel-current');

    const form = document.createElement('form');
    form.className = 'mlfactory-HistoryPanel-form';
    form.autocomplete = 'off';
    this._url = input('text', 'Repository URL', 'remote-url');
    this._url.placeholder = 'https://git.example.com/team/project.git';
    this._url.spellcheck = false;
    this._user = input('text', 'Username', 'remote-username');
    this._user.autocomplete = 'off';
    this._token = input('password', 'Token', 'remote-token');
    // A token is written, never read back: keep the browser from filling it in.
    this._token.autocomplete = 'new-password';
    const save = button('Save remote', null, 'accept');
    save.type = 'submit';
    this._forget = button(
      'Forget credentials',
      () => void this._forgetCredentials(),
      'reject'
    );
    this._forget.title = 'Delete the saved username and token';
    const actions = div('mlfactory-HistoryPanel-actions');
    actions.append(save, this._forget);
    form.append(
      labelled('Repository URL', this._url),
      labelled('Username', this._user),
      labelled('Token (or password)', this._token),
      actions
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._save(save);
    });

    const sync = div('mlfactory-HistoryPanel-actions');
    this._push = button('Push', () => void this._run('push'), 'accept');
    this._pull = button('Pull', () => void this._run('pull'), 'reject');
    this._push.title = 'Send your versions to the remote';
    this._pull.title = "Bring in the remote's versions";
    sync.append(this._push, this._pull);

    this._result = div('mlfactory-HistoryPanel-feedback');
    this._result.setAttribute('role', 'status');
    this._result.dataset.testid = 'mlfactory-history-remote-result';

    this.node.append(this._current, form, sync, this._result);
  }

  readonly node: HTMLDetailsElement;

  /** Show the remote of `status` (the form keeps what the user is typing). */
  fill(status: IHistoryStatus): void {
    const remote = status.remote;
    this._hasRemote = remote !== null;
    if (remote) {
      const shown = displayRemoteUrl(remote.url);
      this._current.textContent = remote.has_credentials
        ? `Remote: ${shown} (credentials saved)`
        : `Remote: ${shown}`;
      if (!this._url.value) {
        this._url.value = shown;
      }
    } else {
      this._current.textContent =
        'No remote yet: add one to back up your versions and share them.';
    }
    this._forget.disabled = !remote?.has_credentials;
    this._setBusy(false);
  }

  private async _save(save: HTMLButtonElement): Promise<void> {
    const url = this._url.value.trim();
    if (!url) {
      feedback(this._result, 'Enter the repository URL.', true);
      return;
    }
    save.disabled = true;
    try {
      await requestHistory('remote', {
        method: 'PUT',
        json: {
          url,
          username: this._user.value.trim(),
          token: this._token.value
        }
      });
      this._token.value = '';
      feedback(this._result, 'Remote saved.');
      await this._options.reloadStatus();
    } catch (error) {
      feedback(
        this._result,
        errorText(error, 'Could not save the remote.'),
        true
      );
    } finally {
      save.disabled = false;
    }
  }

  private async _forgetCredentials(): Promise<void> {
    this._forget.disabled = true;
    try {
      await requestHistory('remote', { method: 'DELETE' });
      this._user.value = '';
      this._token.value = '';
      feedback(this._result, 'The saved username and token are deleted.');
      await this._options.reloadStatus();
    } catch (error) {
      this._forget.disabled = false;
      feedback(
        this._result,
        errorText(error, 'Could not forget the credentials.'),
        true
      );
    }
  }

  private async _run(action: 'push' | 'pull'): Promise<void> {
    this._setBusy(true);
    feedback(this._result, action === 'push' ? 'Pushing…' : 'Pulling…');
    try {
      if (action === 'push') {
        const result = await requestHistory<IPushResult>('push', {
          method: 'POST'
        });
        feedback(
          this._result,
          result.pushed
            ? 'Pushed your versions to the remote.'
            : 'Nothing to push: the remote has all your versions.'
        );
      } else {
        const result = await requestHistory<IPullResult>('pull', {
          method: 'POST'
        });
        this._showPull(result);
        if (result.updated) {
          const skipped = await this._options.pulled();
          if (skipped.length) {
            this._result.append(
              paragraph(
                'Not reloaded because of unsaved edits (save them, or use File › Reload Notebook from Disk):'
              ),
              fileList(skipped)
            );
          }
        }
      }
    } catch (error) {
      feedback(this._result, errorText(error, `Could not ${action}.`), true);
      if (error instanceof HistoryError && conflictsOf(error).length) {
        this._showConflicts(conflictsOf(error));
      }
    } finally {
      this._setBusy(false);
    }
  }

  private _showPull(result: IPullResult): void {
    feedback(
      this._result,
      result.updated
        ? 'Pulled the versions from the remote.'
        : 'Already up to date with the remote.'
    );
    if (result.merged_notebooks.length) {
      this._result.append(
        paragraph('Notebooks changed on both sides and merged:'),
        fileList(result.merged_notebooks)
      );
    }
    if (result.conflicts.length) {
      this._showConflicts(result.conflicts);
    }
  }

  private _showConflicts(conflicts: string[]): void {
    const list = fileList(conflicts);
    list.classList.add('mlfactory-HistoryPanel-conflicts');
    list.dataset.testid = 'mlfactory-history-conflicts';
    this._result.append(paragraph('Files in conflict:'), list);
  }

  private _setBusy(busy: boolean): void {
    this._push.disabled = busy || !this._hasRemote;
    this._pull.disabled = busy || !this._hasRemote;
  }

  private readonly _options: RemoteSection.IOptions;
  private readonly _current: HTMLElement;
  private readonly _url: HTMLInputElement;
  private readonly _user: HTMLInputElement;
  private readonly _token: HTMLInputElement;
  private readonly _forget: HTMLButtonElement;
  private readonly _push: HTMLButtonElement;
  private readonly _pull: HTMLButtonElement;
  private readonly _result: HTMLElement;
  private _hasRemote = false;
}
