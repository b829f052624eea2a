// API reference: renders /api/openapi.json locally (no CDN): one block per operation with its
// lowest role, parameters, request body and answers. Everything goes in with textContent.
import { api, el, showError } from "./common.js";

function schemaText(schema, spec) {
  return JSON.stringify(schema, (key, value) => {
    if (value && typeof value === "object" && typeof value.$ref === "string") {
      const name = value.$ref.split("/").pop();
      return { [`$ref ${name}`]: spec.components.schemas[name] ? "see components" : "?" };
    }
    return value;
  }, 2);
}

async function main() {
  let spec;
  try {
    spec = await api("/api/openapi.json");
  } catch (err) {
    showError(err);
    return;
  }
  const root = document.getElementById("api-ops");
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (typeof op !== "object" || !op.responses) continue;
      const box = el("section", { class: "api-op", id: op.operationId },
        el("h3", {}, el("span", { class: "method", text: method.toUpperCase() }), path),
        el("p", { text: op.summary || "" }),
        el("p", { class: "muted", text: `Role: ${op["x-panfm-role"] || "?"}` }));
      if (op.parameters && op.parameters.length) {
        box.append(el("ul", {}, ...op.parameters.map((p) =>
          el("li", { text: `${p.in} ${p.name}${p.required ? " (required)" : ""}: ${p.description || ""}` }))));
      }
      if (op.requestBody) {
        const body = op.requestBody.content["application/json"];
        box.append(el("details", {}, el("summary", { text: "Request body" }), el("pre", { text: schemaText(body.schema, spec) })));
      }
      const answers = Object.entries(op.responses).map(([code, r]) => `${code}: ${r.description}`);
      box.append(el("p", { text: answers.join(" · ") }));
      root.append(box);
    }
  }
  const schemas = el("section", { class: "api-op" }, el("h3", { text: "Schemas" }));
  for (const [name, schema] of Object.entries(spec.components.schemas)) {
    schemas.append(el("details", {}, el("summary", { text: name }), el("pre", { text: schemaText(schema, spec) })));
  }
  root.append(schemas);
}

main();
