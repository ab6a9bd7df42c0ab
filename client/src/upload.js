// The upload form: pick or drop a file, send it with progress, show errors.
'use strict';

import { uploadForm } from './api.js';
import { formatBytes, formatPercent } from './format.js';

/** The form's fields, leaving out empty option inputs and unticked boxes. */
function formFields(form, file) {
  const data = new FormData();
  data.append('file', file, file.name);
  for (const input of form.querySelectorAll('.upload-options input')) {
    if (input.type === 'checkbox') {
      if (input.checked) data.append(input.name, input.value);
    } else if (input.value.trim() !== '') {
      data.append(input.name, input.value.trim());
    }
  }
  return data;
}

/**
 * Makes `form` upload with XMLHttpRequest.
 * @param {HTMLFormElement} form
 * @param {{dropZone: HTMLElement, onCreated: (status: object) => void}} options
 */
export function setupUpload(form, { dropZone, onCreated }) {
  const input = form.querySelector('input[type="file"]');
  const button = form.querySelector('button[type="submit"]');
  const bar = form.querySelector('#upload-progress');
  const percent = form.querySelector('#upload-percent');
  const message = form.querySelector('#upload-message');
  const error = form.querySelector('#upload-error');
  let busy = false;

  const showProgress = (loaded, total) => {
    const value = total ? (100 * loaded) / total : 0;
    bar.hidden = false;
    bar.value = value;
    percent.textContent = `${formatPercent(value)} of ${formatBytes(total)}`;
  };

  const send = async (file) => {
    if (busy || !file) return;
    busy = true;
    button.disabled = true;
    error.textContent = '';
    message.textContent = `Uploading ${file.name}…`;
    showProgress(0, file.size);
    try {
      const status = await uploadForm(form.action, formFields(form, file), showProgress);
      message.textContent = `Uploaded ${status.name ?? file.name}.`;
      form.reset();
      onCreated(status);
    } catch (err) {
      message.textContent = '';
      error.textContent = err.message;
    } finally {
      busy = false;
      button.disabled = false;
      bar.hidden = true;
      percent.textContent = '';
    }
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const file = input.files && input.files[0];
    if (!file) {
      error.textContent = 'Choose a video file first.';
      input.focus();
      return;
    }
    send(file);
  });

  for (const type of ['dragenter', 'dragover']) {
    dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      dropZone.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'dragend']) {
    dropZone.addEventListener(type, () => dropZone.classList.remove('dragging'));
  }
  dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropZone.classList.remove('dragging');
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) send(file);
  });
}
