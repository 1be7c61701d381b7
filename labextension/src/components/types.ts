/**
 * The shapes of the component registry's REST API, built on the types that
 * `npm run build:types` generates from component.schema.json.
 */
import type { MlfactoryComponent, Port } from './componentSchema';

export type { MlfactoryComponent, Port } from './componentSchema';

export type Stability = MlfactoryComponent['stability'];

/** Every stability, most trusted first (the registry's ranking order). */
export const STABILITIES: readonly Stability[] = [
  'stable',
  'beta',
  'experimental',
  'deprecated'
];

/** An input as the API sends it: `required` is set when there is no default. */
export interface IInputPort extends Omit<Port, 'default'> {
  /** Any JSON value; null both as a default and when the input is required. */
  default?: unknown;
  required: boolean;
}

export type OutputPort = Pick<Port, 'name' | 'type' | 'description'>;

/** One component version in search results. */
export interface IComponentSummary
  extends
    Pick<
      MlfactoryComponent,
      | 'name'
      | 'version'
      | 'summary'
      | 'categories'
      | 'stability'
      | 'owners'
      | 'last_verified'
    >,
    Required<Pick<MlfactoryComponent, 'tags'>> {
  /** The exact reference, `name@x.y.z`. */
  ref: string;
  /** The registry source the component comes from (not component.yaml's `source`). */
  source: string;
  source_kind: string;
  /** Every version of the component, newest first. */
  versions: string[];
}

export interface IHistoryEntry extends Pick<
  MlfactoryComponent,
  'version' | 'stability' | 'last_verified'
> {
  source: string;
}

/** `GET mlfactory/components/items/{name}?version=` */
export interface IComponentDetail
  extends
    IComponentSummary,
    Pick<MlfactoryComponent, 'example' | 'entry_point'>,
    Required<Pick<MlfactoryComponent, 'description' | 'requirements'>> {
  inputs: IInputPort[];
  outputs: OutputPort[];
  /** Markdown, rendered sanitized. */
  readme: string;
  history: IHistoryEntry[];
}

export interface IFacet {
  name: string;
  count: number;
}

export interface ISourceFacet extends IFacet {
  kind: string;
}

/** `GET mlfactory/components/search` */
export interface ISearchResult {
  total: number;
  results: IComponentSummary[];
  facets: {
    categories: IFacet[];
    stabilities: IFacet[];
    sources: ISourceFacet[];
  };
}

export interface ISearchQuery {
  q?: string;
  category?: string;
  stability?: string;
  source?: string;
  limit?: number;
  offset?: number;
}

/** `GET mlfactory/components/snippet?ref=` */
export interface ISnippet {
  ref: string;
  code: string;
}

export interface ISourceStatus {
  name: string;
  kind: string;
  url: string | null;
  ref: string | null;
  status: string;
  fetched_at: string | null;
  error: string | null;
  count: number;
}

export interface ISourceError {
  source: string;
  file: string;
  key: string;
  message: string;
}

/** `GET mlfactory/components/sources` */
export interface ISources {
  sources: ISourceStatus[];
  errors: ISourceError[];
}

export interface ISubmission {
  id: string | number;
  name: string;
  version: string;
  owner: string;
  status: string;
  submitted_at: string;
  /** Which upload this is; an approval names the one the reviewer read. */
  revision: string;
  reviewer: string | null;
  note: string | null;
  reviewed_at: string | null;
}

/** `GET mlfactory/components/submissions/{id}`: a submission with its files. */
export interface ISubmissionDetail extends ISubmission {
  /** File path -> text. */
  contents: Record<string, string>;
}

/** `GET mlfactory/components/submissions?status=` */
export interface ISubmissions {
  submissions: ISubmission[];
  can_review: boolean;
}

export type ReviewDecision = 'approve' | 'reject';
