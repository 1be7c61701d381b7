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
