/**
 * The one way the labextension calls the mlfactory server extension.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Query parameters; empty and undefined values are left out of the URL. */
export type QueryParams = Record<string, string | number | undefined>;

/** An answer that is not 2xx (or not JSON), with the server's JSON body kept. */
export class MlfactoryError extends ServerConnection.ResponseError {
  constructor(response: Response, message: string, body: unknown) {
    super(response, message);
    this.body = body;
  }

  get status(): number {
    return this.response.status;
  }

  /** The server's JSON body, e.g. the `conflicts` a refused pull lists. */
  readonly body: unknown;
}

/**
 * Fetch `url` (a URL under the server's base) and return the parsed JSON body;
 * `name` names the route in error messages.
 *
 * @throws DOMException (AbortError) when `init.signal` aborts the request.
 * @throws ServerConnection.NetworkError when the server cannot be reached.
 * @throws MlfactoryError carrying the server's `message` when the answer is
 *   not 2xx or its body is not JSON.
 */
export async function requestJSON<T>(
  url: string,
  name: string,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let response: Response;
  let text: string;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
    text = await response.text();
  } catch (error) {
    // JupyterLab wraps an abort in a NetworkError: say what happened.
    if (init.signal?.aborted) {
      throw new DOMException('The request was cancelled.', 'AbortError');
    }
    if (error instanceof ServerConnection.NetworkError) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  let data: unknown = undefined;
  let isJSON = true;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      isJSON = false;
    }
  }
  if (!response.ok) {
    // Only a JSON `message` is shown as is; an HTML error page is not.
    throw new MlfactoryError(
      response,
      messageOf(data) ??
        `${name} answered ${response.status} ${response.statusText}`.trim(),
      data
    );
  }
  if (!isJSON) {
    throw new MlfactoryError(
      response,
      `${name} did not answer with JSON`,
      data
    );
  }
  return data as T;
}

/** Call `<base>/mlfactory/api/<endPoint>`; see `requestJSON`. */
export function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {}
): Promise<T> {
  const { baseUrl } = ServerConnection.makeSettings();
  return requestJSON<T>(
    URLExt.join(baseUrl, 'mlfactory', 'api', endPoint),
    `mlfactory/api/${endPoint}`,
    init
  );
}

/**
 * Call `<base>/mlfactory/<segments…>?<query>`, for the routes outside
 * `mlfactory/api` (e.g. `mlfactory/components/…`); see `requestJSON`.
 * Each segment is URL-encoded here, so server-provided names are safe to pass.
 */
export function requestMlfactory<T>(
  segments: string[],
  query: QueryParams = {},
  init: RequestInit = {}
): Promise<T> {
  const { baseUrl } = ServerConnection.makeSettings();
  const path = segments.map(encodeURIComponent).join('/');
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      params[key] = String(value);
    }
  }
  const url =
    URLExt.join(baseUrl, 'mlfactory', path) +
    (Object.keys(params).length ? URLExt.objectToQueryString(params) : '');
  return requestJSON<T>(url, `mlfactory/${path}`, init);
}

/** Whether `error` is the AbortError `requestJSON` throws for a cancelled call. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

function messageOf(data: unknown): string | undefined {
  if (typeof data === 'object' && data !== null && 'message' in data) {
    const { message } = data as { message: unknown };
    if (typeof message === 'string' && message.length > 0) {
      return message;
    }
  }
  return undefined;
}
