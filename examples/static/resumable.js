// The resumable-upload panel: tus-js-client (its browser build, served from node_modules) sends a
// file in chunks with tus 1.0 or the IETF draft; pause, resume, reload and going offline all
// continue from the offset the server stored.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { upload: null, results: [], errors: [], resumedAt: [], paused: false, offline: false };
  window.demo.resumable = state;

  function size(n) {
    if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
    return `${n} bytes`;
  }

  function status(message, cls) {
    const out = $("r-status");
    out.textContent = message;
    out.className = cls ? `result ${cls}` : "result";
  }

  function buttons(running) {
    $("r-start").disabled = running;
    $("r-pause").disabled = !running;
    $("r-resume").disabled = running || state.upload === null;
  }

  function progress(sent, total) {
    const pct = total ? Math.floor((sent / total) * 100) : 0;
    $("r-progress").value = pct;
    $("r-percent").textContent = `${pct} %`;
  }

  function start() {
    const file = $("r-file").files[0];
    if (!file) {
      status("Choose a file first.", "error");
      return;
    }
    if (typeof tus === "undefined") {
      status("tus-js-client is not installed: run `npm ci` (make install).", "error");
      return;
    }
    const upload = new tus.Upload(file, {
      endpoint: "/files",
      protocol: $("r-protocol").value,
      chunkSize: Number($("r-chunk").value),
      retryDelays: [0, 500, 1000, 2000, 4000],
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      removeFingerprintOnSuccess: true,
      onAfterResponse(req, res) {
        // A HEAD answer is where the server says how much it already has.
        if (req.getMethod() === "HEAD" && res.getStatus() < 300) {
          const offset = Number(res.getHeader("Upload-Offset"));
          state.resumedAt.push(offset);
          status(`Resuming at ${size(offset)} of ${size(file.size)}…`);
        }
      },
      onProgress(sent, total) {
        progress(sent, total);
      },
      onChunkComplete(chunk, accepted, total) {
        window.dispatchEvent(new CustomEvent("resumable-chunk", { detail: { accepted, total } }));
      },
      onSuccess() {
        progress(1, 1);
        state.results.push({ name: file.name, size: file.size, url: upload.url });
        status(`Done: ${file.name}, ${size(file.size)}.`);
        state.upload = null;
        buttons(false);
      },
      onError(error) {
        if (!navigator.onLine) {
          // Offline: tus-js-client stops retrying; carry on when the browser is back online.
          state.offline = true;
          status("Offline: the upload continues when the connection is back.", "error");
          return;
        }
        state.errors.push(String(error));
        status(`Upload failed: ${error}`, "error");
        buttons(false);
      },
    });
    state.upload = upload;
    state.paused = false;
    buttons(true);
    status(`Uploading ${file.name}…`);
    upload.findPreviousUploads().then((previous) => {
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    });
  }

  function pause() {
    if (!state.upload) return;
    state.upload.abort();
    state.paused = true;
    buttons(false);
    status("Paused.");
  }

  function resume() {
    if (!state.upload) return;
    state.paused = false;
    buttons(true);
    state.upload.start();
  }

  window.addEventListener("online", () => {
    if (state.offline && state.upload) {
      state.offline = false;
      state.upload.start();
    }
  });
  $("r-start").addEventListener("click", start);
  $("r-pause").addEventListener("click", pause);
  $("r-resume").addEventListener("click", resume);
  state.pause = pause;
})();
