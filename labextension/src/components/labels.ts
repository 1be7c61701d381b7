/**
 * How registry sources read to a person. The server names each source and
 * gives its kind; the built-in, shared and own sources carry a fixed name
 * equal in meaning to their kind, so showing both read "builtin · builtin".
 */

/** What each kind of source is, in words. */
const KIND_LABELS: Record<string, string> = {
  builtin: 'Built-in',
  published: 'Shared',
  user: 'My submissions',
  directory: 'folder',
  git: 'git'
};

/** Kinds with one source each, whose kind says all its name would. */
const SINGLE_SOURCE_KINDS = new Set(['builtin', 'published', 'user']);

/** A source's kind in words (an unknown kind as the server sent it). */
export function kindLabel(kind: string): string {
  return KIND_LABELS[kind] ?? kind;
}

/**
 * A source as a person reads it: "Built-in", "Shared", "My submissions", or
 * a configured source's own name with its kind ("team · git").
 */
export function sourceLabel(name: string, kind: string): string {
  if (SINGLE_SOURCE_KINDS.has(kind)) {
    return kindLabel(kind);
  }
  const what = kindLabel(kind);
  return what && what !== name ? `${name} · ${what}` : name;
}

/** A source in a result's badge: short, the kind only where it is the name. */
export function sourceShortLabel(name: string, kind: string): string {
  return SINGLE_SOURCE_KINDS.has(kind) ? kindLabel(kind) : name;
}

/** A filter option: the source and how many results it holds. */
export function sourceOptionLabel(
  name: string,
  kind: string,
  count: number
): string {
  return `${sourceLabel(name, kind)} (${count})`;
}
