// CodeMirror 6 editors that stand in for the step forms' <textarea>s. The
// textarea stays the form field: every change is copied back, so htmx (and a
// page without JavaScript) submits what the learner sees.
import { EditorState, StateEffect, StateField, RangeSetBuilder } from "@codemirror/state";
import {
  EditorView, Decoration, keymap, lineNumbers, highlightActiveLine,
  highlightActiveLineGutter, drawSelection, highlightSpecialChars,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { bracketMatching, indentOnInput, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { classHighlighter } from "@lezer/highlight";

const setErrorLine = StateEffect.define();
const errorLine = StateField.define({
  create: () => Decoration.none,
  update(deco, tr) {
    for (const e of tr.effects) {
      if (e.is(setErrorLine)) {
        if (e.value == null || e.value < 1 || e.value > tr.state.doc.lines) return Decoration.none;
        const line = tr.state.doc.line(e.value);
        const b = new RangeSetBuilder();
        b.add(line.from, line.from, Decoration.line({ class: "cm-error-line" }));
        return b.finish();
      }
    }
    return tr.docChanged ? Decoration.none : deco.map(tr.changes);
  },
  provide: (f) => EditorView.decorations.from(f),
});

const editors = new WeakMap();

function styleNonce() {
  const meta = document.querySelector('meta[name="style-nonce"]');
  return meta ? meta.content : "";
}

function runKeys(textarea) {
  const click = (selector) => () => {
    const form = textarea.form;
    const button = form && form.querySelector(selector);
    if (button && !button.disabled) button.click();
    return true;
  };
  return keymap.of([
    { key: "Mod-Enter", run: click(`[data-run="${textarea.dataset.side}"]`) },
    { key: "Shift-Mod-Enter", run: click("[data-run=both]") },
  ]);
}

export function mountEditor(textarea) {
  if (editors.has(textarea)) return editors.get(textarea);
  const label = document.querySelector(`label[for="${textarea.id}"]`);
  const onChange = EditorView.updateListener.of((u) => {
    if (!u.docChanged) return;
    textarea.value = u.state.doc.toString();
    markEdited(textarea);
    textarea.dispatchEvent(new Event("sbs:edit", { bubbles: true }));
  });
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        runKeys(textarea), lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(),
        history(), drawSelection(), indentOnInput(), bracketMatching(), highlightActiveLine(),
        indentUnit.of("    "), python(), syntaxHighlighting(classHighlighter), errorLine,
        EditorView.lineWrapping, // long lines wrap: a trailing comment is never cut off
        keymap.of([...defaultKeymap, ...historyKeymap]), onChange,
        EditorView.cspNonce.of(styleNonce()),
        EditorView.contentAttributes.of({
          "aria-label": label ? label.textContent.trim() : "code",
          "aria-multiline": "true",
          // focusable by the keyboard in its own right, so the scroller around it
          // counts as a scrollable region a keyboard can reach (WCAG 2.1.1)
          "tabindex": "0",
        }),
      ],
    }),
  });
  textarea.after(view.dom);
  textarea.hidden = true;
  textarea.tabIndex = -1;
  editors.set(textarea, view);
  markEdited(textarea);
  return view;
}

function markEdited(textarea) {
  const side = textarea.closest(".side");
  if (side) side.classList.toggle("is-edited", textarea.value !== textarea.dataset.original);
}

export function editorFor(textarea) {
  return editors.get(textarea);
}

export function setCode(textarea, code) {
  const view = editors.get(textarea);
  textarea.value = code;
  if (view) view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: code } });
  markEdited(textarea);
}

export function markErrorLine(textarea, line) {
  const view = editors.get(textarea);
  if (!view) return;
  view.dispatch({ effects: setErrorLine.of(line) });
  if (line != null && line >= 1 && line <= view.state.doc.lines) {
    const pos = view.state.doc.line(line).from;
    view.dispatch({ effects: EditorView.scrollIntoView(pos, { y: "nearest" }) });
  }
}

export function focusLine(textarea, line) {
  const view = editors.get(textarea);
  if (!view || line < 1 || line > view.state.doc.lines) return;
  const pos = view.state.doc.line(line).from;
  view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
  view.focus();
}
