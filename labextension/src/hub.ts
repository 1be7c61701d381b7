/**
 * This server as the hub sees it: the hub's links a person needs (the spawn page, home,
 * the cost dashboard) and stopping the server through the hub's REST API.
 *
 * Facts come from PageConfig, which JupyterHub's single-user extension fills in
 * (`hubPrefix`, `hubHost`, `hubServerUser`, `hubServerName`, `token`). The page's token is
 * the browser's OAuth token for this server; the hub config grants it `servers!server`
 * (this server only), so it can stop this server. The hub revokes it with the server.
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';

/** Where the hub is and whose server this page belongs to. */
export interface IHubFacts {
  /** The hub's URL prefix, e.g. "/hub/". */
  hubPrefix: string;
  /** The hub's origin when it differs from the page's, else "". */
  hubHost: string;
  /** The server's owner. */
  user: string;
  /** "" for the default server. */
  serverName: string;
  token: string;
}

/** The hub facts from PageConfig, or null when this JupyterLab does not run under a hub. */
export function hubFacts(
  get: (name: string) => string = PageConfig.getOption
): IHubFacts | null {
  const hubPrefix = get('hubPrefix');
  const user = get('hubServerUser') || get('hubUser');
  if (!hubPrefix || !user) {
    return null;
  }
  return {
    hubPrefix,
    hubHost: get('hubHost'),
    user,
    serverName: get('hubServerName'),
    token: get('token')
  };
}

/** The hub's base URL ("/" for "/hub/"): services live under `<base>services/`. */
export function hubBase(f: IHubFacts): string {
  const prefix = f.hubPrefix.endsWith('/') ? f.hubPrefix : `${f.hubPrefix}/`;
  return prefix.endsWith('/hub/') ? prefix.slice(0, -'hub/'.length) : '/';
}

/** `<base>services/mlfactory/<path>` on the hub's host. */
export function serviceUrl(f: IHubFacts, path: string): string {
  return f.hubHost + URLExt.join(hubBase(f), 'services', 'mlfactory', path);
}

export function dashboardUrl(f: IHubFacts): string {
  return serviceUrl(f, 'dashboard');
}

/** "Open the cost dashboard", in a new tab. */
export function dashboardLink(f: IHubFacts, testid: string): HTMLAnchorElement {
  const link = document.createElement('a');
  link.href = dashboardUrl(f);
  link.target = '_blank';
  link.rel = 'noopener';
  link.textContent = 'Open the cost dashboard';
  link.dataset.testid = testid;
  return link;
}

/** The hub's page that starts this server (with the resource picker). */
export function spawnUrl(f: IHubFacts): string {
  const parts = ['spawn', encodeURIComponent(f.user)];
  if (f.serverName) {
    parts.push(encodeURIComponent(f.serverName));
  }
  return f.hubHost + URLExt.join(f.hubPrefix, ...parts);
}

export function homeUrl(f: IHubFacts): string {
  return f.hubHost + URLExt.join(f.hubPrefix, 'home');
}

/** `DELETE` this URL to stop the server. */
export function serverApiUrl(f: IHubFacts): string {
  const user = encodeURIComponent(f.user);
  const tail = f.serverName
    ? ['servers', encodeURIComponent(f.serverName)]
    : ['server'];
  return f.hubHost + URLExt.join(f.hubPrefix, 'api', 'users', user, ...tail);
}

export type StopResult =
  /** The hub stopped it (204) or is stopping it (202). */
  { ok: true; pending: boolean } | { ok: false; message: string };

type Fetch = (url: string, init: RequestInit) => Promise<Response>;

function headers(f: IHubFacts): Record<string, string> {
  // a token header, not the hub's cookie: the hub checks XSRF only on cookie requests
  return f.token ? { Authorization: `token ${f.token}` } : {};
}

/** Ask the hub to stop this server; never throws. */
export async function stopServer(
  f: IHubFacts,
  request: Fetch = (url, init) => fetch(url, init)
): Promise<StopResult> {
  let response: Response;
  try {
    response = await request(serverApiUrl(f), {
      method: 'DELETE',
      headers: headers(f),
      credentials: 'omit'
    });
  } catch {
    return {
      ok: false,
      message:
        'The hub cannot be reached; try again, or stop the server from the hub.'
    };
  }
  if (response.status === 202 || response.status === 204) {
    return { ok: true, pending: response.status === 202 };
  }
  let message = '';
  try {
    const body = (await response.json()) as { message?: unknown };
    message = typeof body.message === 'string' ? body.message : '';
  } catch {
    // not JSON: the status says enough
  }
  return {
    ok: false,
    message: `The hub did not stop the server (${response.status}${message ? `: ${message}` : ''}). Stop it from the hub's home page.`
  };
}

/**
 * Whether the hub has finished stopping this server: the hub revokes this page's token
 * with the server, so a refused token means stopped; otherwise the server's entry says.
 */
export async function isStopped(
  f: IHubFacts,
  request: Fetch = (url, init) => fetch(url, init)
): Promise<boolean> {
  let response: Response;
  try {
    response = await request(
      f.hubHost + URLExt.join(f.hubPrefix, 'api', 'user'),
      {
        headers: headers(f),
        credentials: 'omit'
      }
    );
  } catch {
    return false;
  }
  if (response.status === 401 || response.status === 403) {
    return true;
  }
  if (!response.ok) {
    return false;
  }
  try {
    const body = (await response.json()) as {
      servers?: Record<string, { ready?: boolean; pending?: string | null }>;
    };
    if (!body.servers) {
      return false; // the token may not read servers: unknown, so not stopped
    }
    const server = body.servers[f.serverName];
    return server === undefined || (!server.ready && !server.pending);
  } catch {
    return false;
  }
}
