/**
 * Pure helpers of the history panel: labels for versions, which of two
 * selected versions is the older one, and remote URLs fit for display.
 */
import { Time } from '@jupyterlab/coreutils';

import { type IVersion, WORKING } from './api';

/** A side of a diff: a version, or the working copy on disk. */
export interface IVersionRef {
  /** A commit id, or `WORKING`. */
  id: string;
  /** What a person reads: the version's message, or "Working copy". */
  label: string;
  /** The version itself, for its time and its details; none for the working copy. */
  version?: IVersion;
}

export function workingRef(): IVersionRef {
  return { id: WORKING, label: 'Working copy' };
}

export function versionRef(version: IVersion): IVersionRef {
  return { id: version.id, label: versionLabel(version), version };
}

/** The message's first line, shortened ("(no message)" if there is none). */
export function versionLabel(version: IVersion): string {
  const firstLine = version.message.split('\n', 1)[0].trim();
  if (!firstLine) {
    return '(no message)';
  }
  return firstLine.length > 60 ? `${firstLine.slice(0, 59)}…` : firstLine;
}

/**
 * The git facts of a version for its "Details" view, as (term, value) pairs:
 * what the main view leaves out (the full id, the e-mail, the exact time).
 */
export function versionDetails(version: IVersion): [string, string][] {
  const facts: [string, string][] = [
    ['Version id', version.id],
    ['Author', version.author],
    ['E-mail', version.email],
    ['Saved at', version.time]
  ];
  return facts.filter(([, value]) => value !== '');
}

/**
 * Order two selected ids as (older, newer) using the list's order (newest
 * first); the working copy is newer than every version.
 */
export function orderPair(
  ids: readonly [string, string],
  versions: readonly IVersion[]
): [string, string] {
  const rank = (id: string): number =>
    id === WORKING ? -1 : versions.findIndex(v => v.id === id);
  const [a, b] = ids;
  return rank(a) > rank(b) ? [a, b] : [b, a];
}

/**
 * Add `id` to a selection of at most two ids, or remove it; a third pick
 * drops the oldest pick.
 */
export function toggleSelection(
  selected: readonly string[],
  id: string
): string[] {
  if (selected.includes(id)) {
    return selected.filter(item => item !== id);
  }
  return [...selected, id].slice(-2);
}

/** "3 minutes ago" and "11/26/2026, 2:05:00 PM"; unknown times stay as sent. */
export function formatTimes(iso: string): {
  relative: string;
  absolute: string;
} {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return { relative: iso, absolute: iso };
  }
  return {
    relative: Time.formatHuman(date),
    absolute: date.toLocaleString()
  };
}

/**
 * A remote URL without any user name or password written into it, so a
 * credential never reaches the screen even if one slipped into the URL.
 */
export function displayRemoteUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) {
      parsed.username = '';
      parsed.password = '';
      return parsed.toString();
    }
    return url;
  } catch {
    // scp-like "git@host:org/repo.git" is not a URL; it holds no secret.
    return url.replace(/^[^@/]*:[^@/]*@/, '');
  }
}
