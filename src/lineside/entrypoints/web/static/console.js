// The console's progressive enhancement. Every page works without this file: it only keeps
// live parts fresh, adds copy and select-all buttons, and shows a progress bar while a long
// form is being worked on. Served from the package (no CDN), allowed by the CSP's
// script-src 'self'; it never builds HTML itself, only places what the server rendered.
"use strict";
(() => {
  // <section data-refresh="/url/of/its/fragment" data-every="5">: replaced by the fragment
  // every few seconds while the page is visible.
  for (const part of document.querySelectorAll("[data-refresh]")) {
    const every = Math.max(2, Number(part.dataset.every || 5)) * 1000;
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const answer = await fetch(part.dataset.refresh, { credentials: "same-origin" });
        if (answer.ok) {
          part.innerHTML = await answer.text();
          part.dataset.refreshed = String(Number(part.dataset.refreshed || 0) + 1);
        }
      } catch (_) {
        // Offline for a moment: the next tick tries again.
      }
    };
    window.setInterval(refresh, every);
  }

  // <button data-copy="id-of-the-secret" hidden>: copies the element's text.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      await navigator.clipboard.writeText(source.textContent.trim());
      button.textContent = "Copied";
    });
  }

  // <input type="checkbox" data-select-all="name" hidden>: checks every box named "name".
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    all.closest("[hidden]")?.removeAttribute("hidden");
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll(`input[name="${all.dataset.selectAll}"]`)) {
        box.checked = all.checked;
      }
    });
  }

  // <form data-progress> with a hidden <progress>: shown, with the seconds spent, on submit.
  for (const form of document.querySelectorAll("form[data-progress]")) {
    form.addEventListener("submit", () => {
      const bar = form.querySelector("progress");
      const said = form.querySelector("[data-progress-text]");
      if (!bar) return;
      bar.hidden = false;
      const started = Date.now();
      window.setInterval(() => {
        if (said) said.textContent = `Working… ${Math.round((Date.now() - started) / 1000)} s`;
      }, 500);
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }
})();
