/**
 * The one way the labextension calls the mlfactory server extension.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * Call `<base>/mlfactory/api/<endPoint>` and return the parsed JSON body.
 *
 * @throws ServerConnection.NetworkError when the server cannot be reached.
 * @throws ServerConnection.ResponseError carrying the server's `message`
 *   when the answer is not 2xx or its body is not JSON.
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const requestUrl = URLExt.join(
    settings.baseUrl,
    'mlfactory',
    'api',
    endPoint
  );

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
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
    throw new ServerConnection.ResponseError(
      response,
      messageOf(data) ??
        `mlfactory/api/${endPoint} answered ${response.status} ${response.statusText}`.trim()
    );
  }
  if (!isJSON) {
    throw new ServerConnection.ResponseError(
      response,
      `mlfactory/api/${endPoint} did not answer with JSON`
    );
  }
  return data as T;
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

/** Query parameters; empty and undefined values are left out of the URL. */
export type QueryParams = Record<string, string | number | undefined>;

/**
 * Call `<base>/mlfactory/<segments…>?<query>` and return the parsed JSON body:
 * for the routes outside `mlfactory/api` (e.g. `mlfactory/components/…`).
 * Each segment is URL-encoded here, so server-provided names are safe to pass.
 *
 * @throws DOMException (AbortError) when `init.signal` aborts the request.
 * @throws ServerConnection.NetworkError when the server cannot be reached.
 * @throws ServerConnection.ResponseError carrying the server's `message`
 *   when the answer is not 2xx or its body is not JSON.
 */
export async function requestMlfactory<T>(
  segments: string[],
  query: QueryParams = {},
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const path = segments.map(encodeURIComponent).join('/');
  const params: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      params[key] = String(value);
    }
  }
  const requestUrl =
    URLExt.join(settings.baseUrl, 'mlfactory', path) +
    (Object.keys(params).length ? URLExt.objectToQueryString(params) : '');

  let response: Response;
  let text: string;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
    text = await response.text();
  } catch (error) {
    if (init.signal?.aborted) {
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
    throw new ServerConnection.ResponseError(
      response,
      messageOf(data) ??
        `mlfactory/${path} answered ${response.status} ${response.statusText}`.trim()
    );
  }
  if (!isJSON) {
    throw new ServerConnection.ResponseError(
      response,
      `mlfactory/${path} did not answer with JSON`
    );
  }
  return data as T;
}
