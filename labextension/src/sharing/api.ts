/**
 * The sharing calls to the server extension (`<base>/mlfactory/shares…`),
 * and one signal that tells every view when shares changed here.
 */
import { Signal } from '@lumino/signaling';

import { requestMlfactory } from '../handler';
import type {
  IOpenedCopy,
  IRecipientSuggestions,
  IShare,
  IShareList
} from './model';

export { errorText } from '../history/api';

const BASE = ['shares'];

/** Emitted after a share is created, updated or revoked from this page. */
export const sharesChanged = new Signal<object, void>({});

function json(method: string, body: unknown): RequestInit {
  return { method, body: JSON.stringify(body) };
}

export async function myShares(): Promise<IShare[]> {
  return (await requestMlfactory<IShareList>(BASE)).shares;
}

export async function sharedWithMe(): Promise<IShare[]> {
  return (await requestMlfactory<IShareList>([...BASE, 'received'])).shares;
}

export function searchRecipients(
  q: string,
  signal?: AbortSignal
): Promise<IRecipientSuggestions> {
  // `q` may be "": the query helper leaves empty values out, which means the same
  return requestMlfactory<IRecipientSuggestions>(
    [...BASE, 'recipients'],
    { q, limit: 20 },
    { signal }
  );
}

export async function createShare(body: unknown): Promise<IShare> {
  const answer = await requestMlfactory<{ share: IShare }>(
    BASE,
    {},
    json('POST', body)
  );
  sharesChanged.emit();
  return answer.share;
}

/** A new version: the notebook as it is now. */
export async function updateShare(id: string): Promise<IShare> {
  const answer = await requestMlfactory<{ share: IShare }>(
    [...BASE, id],
    {},
    json('PATCH', { snapshot: true })
  );
  sharesChanged.emit();
  return answer.share;
}

export async function revokeShare(id: string): Promise<IShare> {
  const answer = await requestMlfactory<{ share: IShare }>(
    [...BASE, id],
    {},
    { method: 'DELETE' }
  );
  sharesChanged.emit();
  return answer.share;
}

export function openCopy(id: string): Promise<IOpenedCopy> {
  return requestMlfactory<IOpenedCopy>(
    [...BASE, id, 'open'],
    {},
    json('POST', {})
  );
}
