/**
 * Asking the notebook's kernel (mlfactory.model_api.candidates): a silent
 * execute request with one user expression, so nothing shows in the
 * notebook, the execution count or the kernel's history.
 */
import type { Kernel, KernelMessage } from '@jupyterlab/services';

import type { IChoice, IKernelFailure, IListing, IPreview } from './model';

const MODULE = "__import__('mlfactory.model_api.candidates', fromlist=['_'])";

/** A plain message for a kernel that cannot answer (not Python, no mlfactory). */
export class KernelProblem extends Error {}

/** The JSON of one user expression, or a KernelProblem saying why there is none. */
async function evaluate<T>(
  kernel: Kernel.IKernelConnection,
  expression: string
): Promise<T> {
  const future = kernel.requestExecute(
    {
      code: '',
      silent: true,
      store_history: false,
      allow_stdin: false,
      stop_on_error: false,
      user_expressions: { mlfactory: expression }
    },
    true
  );
  const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
  const content = reply.content;
  if (content.status !== 'ok') {
    throw new KernelProblem('The kernel could not run the request.');
  }
  const result = content.user_expressions?.mlfactory as
    | {
        status: string;
        data?: Record<string, unknown>;
        ename?: string;
        evalue?: string;
      }
    | undefined;
  if (!result || result.status !== 'ok' || !result.data) {
    const why = result?.ename
      ? `${result.ename}: ${result.evalue ?? ''}`.trim()
      : 'no answer';
    throw new KernelProblem(
      `This notebook’s kernel cannot publish models (${why}). Use a Python kernel of the mlfactory environment.`
    );
  }
  const json = result.data['application/json'];
  if (json && typeof json === 'object') {
    return json as T;
  }
  const text = result.data['text/plain'];
  if (typeof text === 'string') {
    return JSON.parse(text) as T;
  }
  throw new KernelProblem('The kernel answered in an unexpected form.');
}

/** A Python expression that decodes `value` (JSON, whose escapes are Python's). */
function pyJSON(value: unknown): string {
  return `__import__('json').loads(${JSON.stringify(JSON.stringify(value))})`;
}

export function listCandidates(
  kernel: Kernel.IKernelConnection
): Promise<IListing | IKernelFailure> {
  return evaluate(kernel, `${MODULE}.listing_answer()`);
}

export function previewChoice(
  kernel: Kernel.IKernelConnection,
  choice: IChoice
): Promise<IPreview | IKernelFailure> {
  return evaluate(kernel, `${MODULE}.preview_answer(${pyJSON(choice)})`);
}

/** The registry's answer for the new version, or why nothing was published. */
export interface IPublished {
  ok: true;
  published: {
    model: string;
    version: { version: number; urls?: { predict: string } };
  };
}

export function publishChoice(
  kernel: Kernel.IKernelConnection,
  choice: IChoice
): Promise<IPublished | IKernelFailure> {
  return evaluate(kernel, `${MODULE}.publish_answer(${pyJSON(choice)})`);
}
