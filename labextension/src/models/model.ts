/**
 * The Models panel's and the Publish dialog's pure helpers: what the kernel
 * and the registry answer, the registry's name rule, lines a person reads,
 * and the snippets that call a model (SDK, curl, tritonclient).
 */

/** A model-like variable in the kernel (model_api/candidates.py). */
export interface ICandidate {
  name: string;
  class: string;
  kind: string;
  framework: string;
  task: string | null;
  labels: string[];
  n_features: number | null;
}

/** A DataFrame or 2-D array that can be the input example. */
export interface IExample {
  name: string;
  kind: string;
  shape: number[];
  columns: string[];
}

export interface IListing {
  ok: true;
  models: ICandidate[];
  examples: IExample[];
  files: string[];
}

export interface IPreview {
  ok: true;
  name: string;
  task: string;
  labels: string[];
  decision_rule: string;
  inputs: { name: string; datatype: string }[];
  outputs: string[];
  prediction: { headers: string[]; rows: string[][] };
}

export interface IKernelFailure {
  ok: false;
  stage: string;
  error: string;
}

/** What the dialog asks the kernel to check or publish. */
export interface IChoice {
  model?: string;
  file?: string;
  name: string;
  task: string;
  labels?: string[];
  example: string;
  description: string;
  note?: string;
  notebook_path?: string;
  history_version?: string;
}

export interface IUrls {
  metadata: string;
  infer: string;
  predict: string;
}

export interface IVersion {
  version: number;
  published_by: string;
  published_at: string;
  notebook_path: string | null;
  history_version: string | null;
  task: string;
  framework: string;
  serving: boolean;
  serving_changed_by: string | null;
  serving_changed_at: string | null;
  urls?: IUrls;
}

export interface IAlias {
  alias: string;
  version: number;
  previous: number | null;
  moved_by: string;
  moved_at: string;
  urls?: IUrls;
}

export interface IRegisteredModel {
  name: string;
  owner: string;
  created_at: string;
  latest: number | null;
  aliases: Record<string, IAlias>;
  groups?: string[];
  /** Present once the registry supports predict grants. */
  predict_groups?: string[];
  versions?: IVersion[];
  alias_history?: IAlias[];
}

/** The registry's rule (model_api NAME_PATTERN). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const ALIAS_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;
export const TASKS = ['classification', 'regression', 'multi-label'];

/** Why `name` cannot be a model name, or "" when it can. */
export function nameProblem(name: string): string {
  if (!name) {
    return 'Give the model a name.';
  }
  if (!NAME_PATTERN.test(name)) {
    return 'Use 1–63 lowercase letters, digits, “-” or “_”, starting with a letter or digit (the name becomes part of the URL).';
  }
  return '';
}

/** A notebook-friendly default name from a variable name. */
export function suggestName(variable: string): string {
  const slug = variable
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+/, '')
    .slice(0, 63);
  return slug || 'model';
}

/** "a, b, c" → ["a", "b", "c"]; blanks dropped. */
export function parseLabels(text: string): string[] {
  return text
    .split(',')
    .map(s => s.trim())
    .filter(s => s.length > 0);
}

export function candidateLine(c: ICandidate): string {
  const task = c.task ? `, ${c.task}` : '';
  return `${c.name} — ${c.class} (${c.framework}${task})`;
}

export function exampleLine(e: IExample): string {
  const shape = e.shape.join(' × ');
  return `${e.name} — ${e.kind} ${shape}`;
}

/** "2026-03-01T10:00:00Z" → a local date and time a person reads. */
export function when(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function versionLine(v: IVersion): string {
  const state = v.serving ? 'serving' : 'stopped';
  return `v${v.version} · ${v.published_by} · ${when(v.published_at)} · ${state}`;
}

export function aliasLine(a: IAlias): string {
  return `${a.alias} → v${a.version} (moved by ${a.moved_by}, ${when(a.moved_at)})`;
}

export function provenanceLine(v: IVersion): string {
  if (!v.notebook_path) {
    return 'Published from outside a notebook.';
  }
  const at = v.history_version
    ? ` at History version ${v.history_version.slice(0, 12)}`
    : '';
  return `From ${v.notebook_path}${at}`;
}

/** Where the models service answers, on this page's hub. */
export interface IEndpoint {
  /** e.g. "https://hub.example.org/services/models" */
  base: string;
  name: string;
  /** A version number or alias; "" for the model's default (production, else newest). */
  ref: string;
}

/** `origin` + `hubBase` ("/" or "/prefix/") + "services/models". */
export function modelsBase(origin: string, hubBase: string): string {
  const base = hubBase.endsWith('/') ? hubBase : `${hubBase}/`;
  return `${origin}${base}services/models`;
}

export function predictUrl(e: IEndpoint): string {
  const ref = e.ref ? `/versions/${encodeURIComponent(e.ref)}` : '';
  return `${e.base}/v2/models/${encodeURIComponent(e.name)}${ref}/predict`;
}

/** Python string literal (JSON's escapes are Python's too). */
function py(text: string): string {
  return JSON.stringify(text);
}

/** Single-quoted for a POSIX shell. */
function sh(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function sdkSnippet(e: IEndpoint): string {
  const version = e.ref ? `, version=${py(e.ref)}` : '';
  return [
    'import os',
    'from mlfactory.model_api import Client',
    '',
    '# in your server on this hub its own token works (you own the model, or your group',
    '# was granted it); elsewhere set MLFACTORY_MODELS_TOKEN to a token from the hub’s token page',
    `client = Client(${py(e.base)}, token=os.environ.get("MLFACTORY_MODELS_TOKEN") or os.environ["JUPYTERHUB_API_TOKEN"])`,
    `model = client.model(${py(e.name)}${version})`,
    'result = model.predict(X)  # a DataFrame, records or a 2-D array',
    'result.to_pandas()'
  ].join('\n');
}

export function curlSnippet(e: IEndpoint): string {
  return [
    '# GET the URL without /predict to list the input names',
    'curl -sS -H "Authorization: token $JUPYTERHUB_API_TOKEN" \\',
    '  -H "Content-Type: application/json" \\',
    `  -d '{"records": [{"feature": 1.0}]}' \\`,
    `  ${sh(predictUrl(e))}`
  ].join('\n');
}

export function tritonSnippet(e: IEndpoint): string {
  const url = new URL(e.base);
  const ssl = url.protocol === 'https:' ? ', ssl=True' : '';
  const hostPath = `${url.host}${url.pathname.replace(/\/$/, '')}`;
  const version = e.ref ? `, model_version=${py(e.ref)}` : '';
  return [
    'import os',
    'import numpy as np',
    'import tritonclient.http as httpclient',
    '',
    `client = httpclient.InferenceServerClient(${py(hostPath)}${ssl})`,
    'auth = {"Authorization": f"token {os.environ[\'JUPYTERHUB_API_TOKEN\']}"}',
    `meta = client.get_model_metadata(${py(e.name)}${version}, headers=auth)`,
    'inputs = []',
    'for spec in meta["inputs"]:  # one column per input, here a row of zeros',
    '    x = httpclient.InferInput(spec["name"], [1], spec["datatype"])',
    '    x.set_data_from_numpy(np.zeros(1, dtype=np.float64))',
    '    inputs.append(x)',
    `result = client.infer(${py(e.name)}, inputs${version}, headers=auth)`,
    'result.get_response()["outputs"]'
  ].join('\n');
}
