// Browser side: the upload with progress (fetch cannot report upload progress).
export interface UploadAnswer {
  status: number; // 0 when the network failed
  body: unknown;
}

export function uploadPhoto(file: File, userId: string, onProgress: (fraction: number) => void): Promise<UploadAnswer> {
  return new Promise((resolve) => {
    const form = new FormData();
    form.append("image", file);
    if (userId) form.append("userId", userId);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/web/score");
    xhr.responseType = "text";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.upload.onload = () => onProgress(1);
    xhr.onload = () => {
      let body: unknown = undefined;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON: the status decides the message */
      }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => resolve({ status: 0, body: { error: { code: "network", message: "network error" } } });
    xhr.send(form);
  });
}
