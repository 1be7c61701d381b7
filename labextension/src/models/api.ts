/**
 * The Models panel's calls to the server extension (`<base>/mlfactory/models…`),
 * which relays them to the model registry with the server's token, and one
 * signal that tells the panel a model changed on this page.
 */
import { Signal } from '@lumino/signaling';

import { requestMlfactory } from '../handler';
import { requestHistory, withQuery } from '../history/api';
import type { IAlias, IRegisteredModel, IVersion } from './model';

export { errorText } from '../history/api';

/** Emitted after a publish, an alias move, a serving change or a grant here. */
export const modelsChanged = new Signal<object, void>({});

function json(method: string, body: unknown): RequestInit {
  return { method, body: JSON.stringify(body) };
}

export async function listModels(): Promise<IRegisteredModel[]> {
  return (await requestMlfactory<{ models: IRegisteredModel[] }>(['models']))
    .models;
}

export async function getModel(name: string): Promise<IRegisteredModel> {
  return (await requestMlfactory<{ model: IRegisteredModel }>(['models', name]))
    .model;
}

export async function moveAlias(
  name: string,
  alias: string,
  version: number
): Promise<IAlias> {
  const answer = await requestMlfactory<{ alias: IAlias }>(
    ['models', name, 'aliases', alias],
    {},
    json('PUT', { version })
  );
  modelsChanged.emit();
  return answer.alias;
}

export async function setServing(
  name: string,
  version: number,
  serving: boolean
): Promise<IVersion> {
  const answer = await requestMlfactory<{ version: IVersion }>(
    ['models', name, 'versions', String(version)],
    {},
    json('PATCH', { serving })
  );
  modelsChanged.emit();
  return answer.version;
}

/** Set who may publish (`groups`) and, where supported, who may call (`predict_groups`). */
export async function setGrants(
  name: string,
  grants: { groups?: string[]; predict_groups?: string[] }
): Promise<void> {
  await requestMlfactory(['models', name], {}, json('PATCH', grants));
  modelsChanged.emit();
}

/** The notebook's newest History version, or "" when it has none (or History is off). */
export async function historyVersion(path: string): Promise<string> {
  try {
    const list = await requestHistory<{ versions: { id: string }[] }>(
      withQuery('versions', { path, limit: 1 })
    );
    return list.versions?.[0]?.id ?? '';
  } catch {
    return '';
  }
}
