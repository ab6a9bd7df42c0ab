// HTTP calls to the signwatch API, and reading its JSON errors.
'use strict';

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/** The message of a `{"error": {"code", "message"}}` body, or a fallback. */
export function errorMessage(body, status) {
  const error = body && typeof body === 'object' ? body.error : null;
  if (error && typeof error === 'object' && error.message) return String(error.message);
  if (typeof error === 'string' && error) return error;
  if (status === 0) return 'The server could not be reached.';
  return `The server refused the request (HTTP ${status}).`;
}

function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Sends a request; resolves with the JSON body (null for 204), throws ApiError. */
export async function requestJson(method, url) {
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: { Accept: 'application/json' },
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(errorMessage(null, 0), 0, 'network');
  }
  const body = parseJson(await response.text());
  if (!response.ok) {
    const code = body && body.error ? body.error.code : undefined;
    throw new ApiError(errorMessage(body, response.status), response.status, code);
  }
  return body;
}

/**
 * Uploads `formData` to `url` with XMLHttpRequest (fetch has no upload
 * progress). Resolves with the JSON body; throws ApiError when refused.
 */
export function uploadForm(url, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener('load', () => {
      const body = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body);
      } else {
        const code = body && body.error ? body.error.code : undefined;
        reject(new ApiError(errorMessage(body, xhr.status), xhr.status, code));
      }
    });
    xhr.addEventListener('error', () => {
      reject(new ApiError('The upload failed: the server could not be reached.', 0, 'network'));
    });
    xhr.addEventListener('abort', () => {
      reject(new ApiError('The upload was cancelled.', 0, 'aborted'));
    });
    xhr.send(formData);
  });
}
