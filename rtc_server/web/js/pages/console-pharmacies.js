// /console/pharmacies.html (admins): the clinic's pharmacy directory (search, add, edit,
// take out, load from the records on file) and the clinic's additions to the list of
// medications never refilled online.

import { initConsole } from "../console-shell.js";
import { get, post, put, del } from "../api.js";
import { h, replaceChildren, focusElement, notice } from "../dom.js";
import { handleSubmit } from "../forms.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["name", "phone", "fax", "address_line", "city", "state", "zip", "ncpdp_id"];
const state = { q: "" };

function setPageStatus(kind, text) {
  const area = $("page-status");
  replaceChildren(area, text ? notice(kind, h("p", { text })) : null);
  if (text) focusElement(area);
}

function edit(p) {
  const form = $("pharmacy-form");
  $("pharmacy-id").value = String(p.id);
  for (const name of FIELDS) form.elements.namedItem(name).value = p[name] || "";
  $("p-active").checked = p.active;
  $("add-heading").textContent = `Edit ${p.name}`;
  $("pharmacy-submit").textContent = "Save changes";
  $("pharmacy-cancel").hidden = false;
  focusElement($("p-name"));
}

function stopEditing() {
  const form = $("pharmacy-form");
  form.reset();
  $("pharmacy-id").value = "";
  $("p-active").checked = true;
  $("add-heading").textContent = "Add a pharmacy";
  $("pharmacy-submit").textContent = "Add pharmacy";
  $("pharmacy-cancel").hidden = true;
}

async function loadDirectory() {
  const found = await get("/pharmacies", { query: { q: state.q, include_inactive: true, limit: 100 } });
  if (!found.length) {
    replaceChildren($("directory-list"), h("p", { class: "empty-state", text: state.q
      ? "No pharmacy matches." : "The directory is empty. Add a pharmacy below, or load them from the records on file." }));
    return;
  }
  replaceChildren($("directory-list"), h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden", text: "Pharmacies" }),
    h("thead", {}, h("tr", {}, ["Name", "Address", "Phone", "NCPDP", "Status", ""].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, found.map((p) => h("tr", {},
      h("th", { scope: "row", text: p.name }),
      h("td", { text: [p.address_line, p.city, p.state, p.zip].filter(Boolean).join(", ") || "—" }),
      h("td", { text: p.phone || "—" }),
      h("td", { text: p.ncpdp_id || "—" }),
      h("td", {}, h("span", { class: `badge ${p.active ? "badge--success" : ""}`, text: p.active ? "In the directory" : "Taken out" }),
        p.from_records ? h("span", { class: "badge", text: "From records" }) : null),
      h("td", {}, h("button", { type: "button", class: "button button--secondary button--small", onClick: () => edit(p) },
        "Edit", h("span", { class: "visually-hidden", text: ` ${p.name}` })))))))));
}

async function savePharmacy(data) {
  const id = $("pharmacy-id").value;
  const body = { active: Boolean(data.active) };
  for (const name of FIELDS) body[name] = data[name] || null;
  body.name = data.name;
  const out = id ? await put(`/admin/pharmacies/${id}`, body) : await post("/admin/pharmacies", body);
  stopEditing();
  setPageStatus("success", id ? `${out.name} was saved.` : `${out.name} was added to the directory.`);
  await loadDirectory();
}

async function loadControlled() {
  const rows = await get("/admin/controlled-medications");
  if (!rows.length) {
    replaceChildren($("controlled-list"), h("p", { class: "muted", text: "The clinic has added nothing; the built-in list applies." }));
    return;
  }
  replaceChildren($("controlled-list"), h("ul", { class: "plain-list" }, rows.map((r) => {
    const what = [r.name, r.code ? `RxNorm ${r.code}` : null].filter(Boolean).join(", ");
    const remove = h("button", { type: "button", class: "button button--secondary button--small" },
      "Remove", h("span", { class: "visually-hidden", text: ` ${what}` }));
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      await del(`/admin/controlled-medications/${r.id}`);
      setPageStatus("success", `${what} can be refilled online again (unless the built-in list covers it).`);
      await loadControlled();
    });
    return h("li", {}, what, r.schedule ? h("span", { class: "muted", text: ` (${r.schedule})` }) : null, " ", remove);
  })));
}

const session = await initConsole({ roles: ["admin"] });
if (session) {
  try {
    await Promise.all([loadDirectory(), loadControlled()]);
    for (const id of ["directory", "add", "controlled"]) $(id).hidden = false;
  } catch (error) {
    setPageStatus("error", `Could not load the directory. ${error.message}`);
  }
  $("directory-search").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.q = $("directory-q").value.trim();
    await loadDirectory();
  });
  $("load-records").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    try {
      const out = await post("/admin/pharmacies/load-from-records");
      setPageStatus("success", `Loaded from the records on file: ${out.added} added, ${out.updated} updated.`);
      await loadDirectory();
    } catch (error) {
      setPageStatus("error", error.message);
    } finally {
      button.disabled = false;
    }
  });
  handleSubmit($("pharmacy-form"), savePharmacy);
  $("pharmacy-cancel").addEventListener("click", stopEditing);
  handleSubmit($("controlled-form"), async (data, form) => {
    await post("/admin/controlled-medications", { name: data.name || null, code: data.code || null, schedule: data.schedule || null });
    form.reset();
    setPageStatus("success", "Added. Patients now see those medications as “call the clinic”.");
    await loadControlled();
  });
}
