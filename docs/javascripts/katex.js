// Render the maths that pymdownx.arithmatex (generic: true) leaves as \( ... \) and \[ ... \]
// inside .arithmatex elements, with the KaTeX copy in javascripts/katex/ (no network needed).
// document$ is Material's page observable: it also fires after instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
    ],
    throwOnError: false,
  });
});
