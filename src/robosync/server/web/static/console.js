// The console's only script: a select marked data-autosubmit submits its form on change
// (inline handlers are refused by the Content-Security-Policy).
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.dataset.autosubmit !== undefined) {
    target.form.submit();
  }
});
