// The demo's "Stored in this browser" list: every model folder kept in the browser's model store, with its size,
// dates and state, a button to load it and one to delete it, and the origin's storage use.
import { deleteStoredModel, listStoredModels, modelStorageInfo, type StoredModel } from '../src/index.js';
import { formatBytes, formatDate } from './format.js';

export interface StoredModelsElements {
  empty: HTMLElement;
  table: HTMLTableElement;
  list: HTMLTableSectionElement;
  usage: HTMLElement;
  deleteAll: HTMLButtonElement;
}

export interface StoredModelsActions {
  /** Loads the stored model at this folder URL. */
  load(url: string): void;
  /** Runs an action the page's way (one at a time, errors shown). */
  run(action: () => Promise<void>): void;
}

function cell(text: string, title?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (title) td.title = title;
  return td;
}

function button(label: string, onClick: () => void, secondary: boolean): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (secondary) b.className = 'secondary';
  b.addEventListener('click', onClick);
  return b;
}

function row(model: StoredModel, actions: StoredModelsActions, refresh: () => Promise<void>): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.url = model.url;
  const name = cell(model.name, `${model.url}\n${model.files.filter((f) => !f.missing).map((f) => `${f.name} (${formatBytes(f.storedBytes)})`).join('\n')}`);
  if (!model.complete) {
    const expected = model.files.reduce((n, f) => n + (f.size ?? f.storedBytes), 0);
    const note = document.createElement('span');
    note.className = 'partial';
    note.textContent = ` · incomplete: ${formatBytes(model.storedBytes)} of ${formatBytes(expected)}, the next load resumes`;
    name.append(note);
  }
  const buttons = document.createElement('td');
  buttons.className = 'actions';
  buttons.append(
    button('Load', () => actions.load(model.url), false),
    button(
      'Delete',
      () =>
        actions.run(async () => {
          await deleteStoredModel(model.url);
          await refresh();
        }),
      true,
    ),
  );
  tr.append(name, cell(formatBytes(model.storedBytes)), cell(formatDate(model.storedAt)), cell(formatDate(model.lastUsedAt)), buttons);
  return tr;
}

export function storedModelsView(el: StoredModelsElements, actions: StoredModelsActions): { refresh(): Promise<void> } {
  const refresh = async (): Promise<void> => {
    const [models, info] = await Promise.all([listStoredModels(), modelStorageInfo()]);
    el.list.replaceChildren(...models.map((m) => row(m, actions, refresh)));
    el.table.hidden = models.length === 0;
    el.empty.hidden = models.length > 0 || !info.available;
    el.deleteAll.hidden = models.length < 2;
    el.usage.textContent = info.available
      ? `${models.length} stored · this site uses ${formatBytes(info.usageBytes)} of ${formatBytes(info.quotaBytes)} · ` +
        (info.persisted ? 'persistent storage granted' : 'not persistent: the browser may evict it when the disk runs short')
      : `This browser cannot store models (${info.reason}); every load reads the model over the network.`;
  };
  el.deleteAll.addEventListener('click', () =>
    actions.run(async () => {
      for (const m of await listStoredModels()) await deleteStoredModel(m.url);
      await refresh();
    }),
  );
  return { refresh };
}
