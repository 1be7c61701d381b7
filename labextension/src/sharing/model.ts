/**
 * Pure helpers of the sharing UI: the shapes the server extension answers
 * with, the words a person reads for a share, and the recipient list the
 * Share dialog edits. No DOM, no requests.
 */

/** A share as `/mlfactory/shares…` answers; the owner also sees `users`… */
export interface IShare {
  id: string;
  owner: string;
  /** The notebook's file name. */
  name: string;
  mode: 'view' | 'copy';
  message: string;
  version: number;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  path?: string;
  users?: string[];
  groups?: string[];
  status?: 'active' | 'expired' | 'revoked';
}

export interface IShareList {
  shares: IShare[];
}

export interface IRecipientSuggestions {
  query: string;
  users: string[];
  groups: string[];
  truncated: boolean;
}

export interface IOpenedCopy {
  path: string;
  share: IShare;
  version: number;
}

export interface IRecipient {
  kind: 'user' | 'group';
  name: string;
}

/** What the Share dialog collects. */
export interface IShareDraft {
  path: string;
  recipients: IRecipient[];
  mode: 'view' | 'copy';
  message: string;
  /** A day, `YYYY-MM-DD`, or "" for no expiry. */
  expires: string;
}

const MONTHS = [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Oct',
  'Nov',
  'Dec'
];

/** "6 Dec 2026" for an ISO time (its UTC day); other text as is. */
export function day(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) {
    return iso;
  }
  return `${when.getUTCDate()} ${MONTHS[when.getUTCMonth()]} ${when.getUTCFullYear()}`;
}

/** The line under a received share: who, when, which version. */
export function receivedLine(share: IShare): string {
  const parts = [`from ${share.owner}`, day(share.updated_at)];
  parts.push(`version ${share.version}`);
  if (share.expires_at) {
    parts.push(`until ${day(share.expires_at)}`);
  }
  return parts.filter(Boolean).join(' · ');
}

/** Whom an own share goes to: "bob, group analysts". */
export function recipientsText(share: IShare): string {
  const names = [
    ...(share.users ?? []),
    ...(share.groups ?? []).map(g => `group ${g}`)
  ];
  return names.length ? names.join(', ') : 'nobody';
}

export function modeText(mode: string): string {
  return mode === 'copy' ? 'can open a copy' : 'view only';
}

/** The line under an own share. */
export function ownLine(share: IShare): string {
  const parts = [
    `to ${recipientsText(share)}`,
    modeText(share.mode),
    `version ${share.version}`
  ];
  if (share.status && share.status !== 'active') {
    parts.push(share.status);
  } else if (share.expires_at) {
    parts.push(`until ${day(share.expires_at)}`);
  }
  return parts.join(' · ');
}

/** A recipient as shown: "bob", or "analysts (group)". */
export function recipientLabel(r: IRecipient): string {
  return r.kind === 'group' ? `${r.name} (group)` : r.name;
}

/** `recipients` with `r` added once (same kind and name). */
export function addRecipient(
  recipients: readonly IRecipient[],
  r: IRecipient
): IRecipient[] {
  const name = r.name.trim();
  if (!name || recipients.some(x => x.kind === r.kind && x.name === name)) {
    return [...recipients];
  }
  return [...recipients, { kind: r.kind, name }];
}

export function removeRecipient(
  recipients: readonly IRecipient[],
  r: IRecipient
): IRecipient[] {
  return recipients.filter(x => !(x.kind === r.kind && x.name === r.name));
}

/**
 * The share request for a draft (a day already over is left for the service
 * to refuse with its own words).
 */
export function shareRequest(draft: IShareDraft): Record<string, unknown> {
  const body: Record<string, unknown> = {
    path: draft.path,
    users: draft.recipients.filter(r => r.kind === 'user').map(r => r.name),
    groups: draft.recipients.filter(r => r.kind === 'group').map(r => r.name),
    mode: draft.mode,
    message: draft.message.trim()
  };
  if (draft.expires) {
    body.expires_at = endOfDay(draft.expires);
  }
  return body;
}

/** The end of a `YYYY-MM-DD` day in UTC, as ISO; the text as is when not a day. */
export function endOfDay(date: string): string {
  return /^\d{4}-\d{2}-\d{2}$/.test(date) ? `${date}T23:59:59Z` : date;
}

/** A share's file name without the folder, for titles. */
export function fileName(path: string): string {
  const parts = path.split('/');
  return parts[parts.length - 1] || path;
}
