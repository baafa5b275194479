// The security-question picker: a few standard questions plus "write your own".

export const STANDARD_QUESTIONS = [
  "What was the name of your first pet?",
  "In what city were you born?",
  "What was the name of your elementary school?",
  "What was the make and model of your first car?",
  "What is the middle name of your oldest sibling?",
  "What street did you live on in third grade?",
];

const CUSTOM = "__custom__";

/**
 * Wire a <select name="security_question"> and a hidden custom-question input
 * (name="security_question_custom", inside an element with data-custom-question).
 * Returns a function that copies the custom text into the payload.
 */
export function wireSecurityQuestion(form, { current = null } = {}) {
  const select = form.elements.namedItem("security_question");
  const customInput = form.elements.namedItem("security_question_custom");
  const customField = customInput.closest("[data-custom-question]");
  customInput.dataset.noSubmit = "";

  select.replaceChildren(new Option("Choose a question", ""));
  for (const q of STANDARD_QUESTIONS) select.append(new Option(q, q));
  select.append(new Option("Write my own question", CUSTOM));

  function sync() {
    const custom = select.value === CUSTOM;
    customField.hidden = !custom;
    customInput.required = custom;
    // Errors for the question go beside whichever control the person is using.
    if (custom) customInput.dataset.field = "security_question";
    else delete customInput.dataset.field;
  }
  select.addEventListener("change", () => {
    sync();
    if (select.value === CUSTOM) customInput.focus();
  });

  if (current) {
    if (STANDARD_QUESTIONS.includes(current)) select.value = current;
    else {
      select.value = CUSTOM;
      customInput.value = current;
    }
  }
  sync();

  return (data) => {
    if (data.security_question === CUSTOM) data.security_question = customInput.value.trim();
    return data;
  };
}
