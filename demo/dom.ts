// DOM helpers shared by the demo's pages.

/** The element with this id; a page without it is a build error worth a clear message. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}
