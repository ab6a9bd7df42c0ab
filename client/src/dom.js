// Tiny DOM helpers. Text always goes in through textContent.
'use strict';

/**
 * Creates an element. `props` sets properties (className, href, hidden...)
 * and `data-*` / `aria-*` attributes; children are nodes or strings (as text).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role') {
      element.setAttribute(key, String(value));
    } else {
      element[key] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

/** Sets text only when it changed, so unchanged nodes stay untouched. */
export function setText(element, text) {
  if (element && element.textContent !== text) element.textContent = text;
}

export function field(root, name) {
  return root.querySelector(`[data-field="${name}"]`);
}

export function readJsonScript(id) {
  const script = document.getElementById(id);
  if (!script) return null;
  try {
    return JSON.parse(script.textContent);
  } catch {
    return null;
  }
}
