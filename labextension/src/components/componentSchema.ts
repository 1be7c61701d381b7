/* eslint-disable -- generated from component_registry/schema/component.schema.json by `npm run build:types`: edit the schema, not this file. */

export type Slug = string;

/**
 * component.yaml: the metadata of one registry component (one folder: this file, the Python source, a README and a test).
 */
export interface MlfactoryComponent {
  /**
   * Python identifier, unique in a source; references use it (name@1.2).
   */
  name: string;
  /**
   * Semantic version (https://semver.org), e.g. 1.2.0 or 2.0.0-rc.1.
   */
  version: string;
  /**
   * One line shown in search results.
   */
  summary: string;
  description?: string;
  /**
   * @minItems 1
   */
  categories: [Slug, ...Slug[]];
  tags?: Slug[];
  stability: 'experimental' | 'beta' | 'stable' | 'deprecated';
  /**
   * Teams or people answerable for the component.
   *
   * @minItems 1
   */
  owners: [string, ...string[]];
  /**
   * Python file in the component folder that defines entry_point.
   */
  source: string;
  /**
   * Top-level function in source that the component runs.
   */
  entry_point: string;
  /**
   * Short Markdown doc in the component folder.
   */
  doc?: string;
  inputs: Port[];
  outputs: Port[];
  /**
   * pip requirement specifiers the source needs.
   */
  requirements?: string[];
  /**
   * Python usage example, shown on the component page.
   */
  example: string;
  /**
   * ISO date on which the component's test last passed in review.
   */
  last_verified: string;
}
export interface Port {
  name: string;
  /**
   * dataset: a pandas DataFrame or a dict of column name to 1-d array.
   */
  type:
    | 'str'
    | 'int'
    | 'float'
    | 'bool'
    | 'path'
    | 'list'
    | 'dict'
    | 'array'
    | 'dataset'
    | 'model'
    | 'any';
  description: string;
  /**
   * Present means optional; null is a valid default.
   */
  default?: unknown;
  /**
   * @minItems 1
   */
  choices?: [unknown, ...unknown[]];
}
