/**
 * Calls to the component registry's routes under `<base>/mlfactory/components`.
 */
import { requestMlfactory, serverInfo } from '../handler';
import type {
  IComponentDetail,
  ISearchQuery,
  ISearchResult,
  ISnippet,
  ISources,
  ISubmission,
  ISubmissionDetail,
  ISubmissions,
  ReviewDecision
} from './types';

/** What the panel needs from the server; tests and callers may swap it. */
export interface IComponentsAPI {
  search(query: ISearchQuery, signal?: AbortSignal): Promise<ISearchResult>;
  item(
    name: string,
    version?: string,
    signal?: AbortSignal
  ): Promise<IComponentDetail>;
  snippet(ref: string): Promise<ISnippet>;
  sources(): Promise<ISources>;
  refreshSources(): Promise<unknown>;
  publish(path: string): Promise<{ submission: ISubmission }>;
  submissions(status?: string): Promise<ISubmissions>;
  submission(id: string | number): Promise<{ submission: ISubmissionDetail }>;
  review(
    id: string | number,
    decision: ReviewDecision,
    note: string,
    revision: string | null
  ): Promise<unknown>;
  /** Whether the caller owns this server (owner-only actions are shown). */
  isOwner(): Promise<boolean>;
}

const ROOT = 'components';

function post(body?: unknown): RequestInit {
  return body === undefined
    ? { method: 'POST' }
    : {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json' }
      };
}

export const componentsAPI: IComponentsAPI = {
  search: (query, signal) =>
    requestMlfactory<ISearchResult>([ROOT, 'search'], { ...query }, { signal }),
  item: (name, version, signal) =>
    requestMlfactory<IComponentDetail>(
      [ROOT, 'items', name],
      { version },
      { signal }
    ),
  snippet: ref => requestMlfactory<ISnippet>([ROOT, 'snippet'], { ref }),
  sources: () => requestMlfactory<ISources>([ROOT, 'sources']),
  refreshSources: () =>
    requestMlfactory<unknown>([ROOT, 'sources', 'refresh'], {}, post()),
  publish: path =>
    requestMlfactory<{ submission: ISubmission }>(
      [ROOT, 'publish'],
      {},
      post({ path })
    ),
  submissions: (status = 'pending') =>
    requestMlfactory<ISubmissions>([ROOT, 'submissions'], { status }),
  submission: id =>
    requestMlfactory<{ submission: ISubmissionDetail }>([
      ROOT,
      'submissions',
      String(id)
    ]),
  review: (id, decision, note, revision) =>
    requestMlfactory<unknown>(
      [ROOT, 'submissions', String(id), 'review'],
      {},
      post({ decision, note, revision })
    ),
  isOwner: () => serverInfo().then(info => info.is_owner !== false)
};
