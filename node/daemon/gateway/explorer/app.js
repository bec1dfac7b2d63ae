// The explorer: read-only calls to this node's gateway (JSON-RPC over POST) and live blocks
// over its WebSocket. No build step, nothing loaded from elsewhere. Everything shown comes
// from the chain and is written with textContent, never as HTML.
"use strict";

const params = new URLSearchParams(location.hash.slice(1));
if (params.get("token")) {
  sessionStorage.setItem("chain-token", params.get("token"));
  history.replaceState(null, "", location.pathname); // keep the token out of the address bar
}
const token = sessionStorage.getItem("chain-token");
const $ = (id) => document.getElementById(id);
let nextId = 1;
let validators = [];
const accountNames = new Map();

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function iso(ms) {
  return ms === undefined || ms === null ? "-" : new Date(ms).toISOString();
}

async function rpc(method, params) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = "Bearer " + token;
  const body = JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params: params || {} });
  const response = await fetch("/rpc", { method: "POST", headers, body, credentials: "same-origin" });
  const answer = await response.json();
  if (answer.error) {
    const error = new Error(answer.error.message);
    error.code = answer.error.code;
    throw error;
  }
  return answer.result;
}

async function accountName(key) {
  if (!key) return "-";
  if (!accountNames.has(key)) {
    let name = key.slice(0, 16) + "…";
    try {
      const account = await rpc("account_get", { account: key });
      if (account.name) name = account.name;
    } catch (_) { /* unknown account: keep the short key */ }
    accountNames.set(key, name);
  }
  return accountNames.get(key);
}

function validatorName(index) {
  const v = validators.find((v) => v.index === index);
  return v ? v.name : "validator " + index;
}

async function showStatus() {
  const [status, list, peers] = await Promise.all([
    rpc("node_status"), rpc("validators_list"), rpc("peers_list"),
  ]);
  validators = list;
  $("chain").textContent = `chain ${status.chain_id} · node ${status.node} · height ${status.height}`;
  $("view").textContent = `view ${status.consensus.view}, leader ${validatorName(status.consensus.leader)}`;
  const byKey = new Map(peers.map((p) => [p.public_key, p]));
  const body = $("validators").querySelector("tbody");
  body.replaceChildren();
  for (const v of list) {
    const row = el("tr");
    const self = v.public_key === status.public_key;
    const peer = byKey.get(v.public_key);
    const linkOk = self || (peer && peer.connected);
    row.append(
      el("td", v.index), el("td", v.name),
      el("td", v.index === status.consensus.leader ? "leader" : "backup"),
      el("td", self ? "this node" : linkOk ? "connected" : "not connected", linkOk ? "ok" : "bad"),
      el("td", self ? status.height : peer && peer.head !== null && peer.head !== undefined ? peer.head : "-"),
    );
    body.append(row);
  }
  return status;
}

function blockRow(block) {
  const row = el("tr");
  row.dataset.height = block.height;
  const signers = (block.certificate ? block.certificate.signatures : []).map((s) => s.name).join(", ");
  row.append(
    el("td", block.height), el("td", iso(block.header.timestamp_ms)), el("td", block.header.tx_count),
    el("td", validatorName(block.header.proposer)), el("td", signers),
  );
  return row;
}

async function addBlock(height) {
  const body = $("blocks").querySelector("tbody");
  if (body.querySelector(`tr[data-height="${height}"]`)) return;
  const block = await rpc("block_get", { height });
  if (block.genesis) return;
  const row = blockRow(block);
  const later = [...body.children].find((r) => Number(r.dataset.height) < height);
  body.insertBefore(row, later || null);
  while (body.children.length > 10) body.lastChild.remove();
}

async function showBlocks(head) {
  for (let h = head; h > Math.max(0, head - 10); h--) await addBlock(h);
}

function dl(pairs) {
  const list = el("dl");
  for (const [k, v] of pairs) list.append(el("dt", k), el("dd", v));
  return list;
}

async function showTx(txId) {
  const out = $("tx-out");
  out.replaceChildren(el("p", "looking up…"));
  try {
    const tx = await rpc("tx_get", { tx_id: txId });
    const result = tx.result || {};
    const pairs = [["tx id", tx.tx_id], ["status", tx.status]];
    if (tx.height !== undefined) pairs.push(["block", `${tx.height} (index ${tx.index})`]);
    if (tx.tx) {
      pairs.push(["type", tx.tx.type], ["sender", await accountName(tx.tx.sender)], ["nonce", tx.tx.nonce]);
    }
    if (tx.result) pairs.push(["result", result.ok ? "ok" : `failed: ${result.code} ${result.reason || ""}`]);
    out.replaceChildren(dl(pairs));
    if (tx.status === "committed" || tx.status === "failed") {
      const button = el("button", "download receipt");
      button.id = "receipt-download";
      button.addEventListener("click", () => downloadReceipt(tx.tx_id));
      out.append(button);
    }
  } catch (error) {
    out.replaceChildren(el("p", error.message, "bad"));
  }
}

async function downloadReceipt(txId) {
  const receipt = await rpc("receipt_get", { tx_id: txId });
  const blob = new Blob([JSON.stringify(receipt, null, 2)], { type: "application/json" });
  const link = el("a");
  link.href = URL.createObjectURL(blob);
  link.download = `receipt-${txId.slice(0, 16)}.json`;
  document.body.append(link);
  link.click();
  link.remove();
}

async function showItem(item) {
  const list = $("timeline");
  list.replaceChildren(el("li", "looking up…"));
  try {
    const history = await rpc("item_history", { item });
    list.replaceChildren();
    for (const step of history.steps) {
      let what;
      if (step.kind === "register") what = `registered by ${await accountName(step.by)}`;
      else if (step.kind === "transfer") what = `custody ${await accountName(step.from)} → ${await accountName(step.to)}`;
      else what = `${step.event} at ${step.location || "-"} by ${await accountName(step.by)}`;
      const li = el("li");
      li.append(el("strong", iso(step.timestamp_ms)), document.createTextNode(` block ${step.height}: ${what}`));
      list.append(li);
    }
    list.append(el("li", `custodian now: ${await accountName(history.custodian)}`));
  } catch (error) {
    list.replaceChildren(el("li", error.message, "bad"));
  }
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function checkDocument(file) {
  const out = $("doc-out");
  out.replaceChildren(el("p", `hashing ${file.name} locally…`));
  const digest = hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
  try {
    const anchor = await rpc("notary_get", { digest });
    out.replaceChildren(el("p", `anchored: ${file.name}`, "ok"), dl([
      ["SHA-256", digest], ["block", anchor.height], ["time (UTC)", iso(anchor.timestamp_ms)],
      ["submitted by", await accountName(anchor.submitter)], ["meta", JSON.stringify(anchor.meta || {})],
    ]));
  } catch (error) {
    const text = error.code === 1020 ? "not anchored on this chain" : error.message;
    out.replaceChildren(el("p", `${file.name}: ${text}`, "bad"), dl([["SHA-256", digest]]));
  }
  out.dataset.digest = digest;
}

function live() {
  const protocols = ["chain.jsonrpc"];
  if (token) protocols.push("bearer." + token);
  const ws = new WebSocket(`wss://${location.host}/ws`, protocols);
  ws.onopen = () => {
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscribe", params: { topic: "blocks" } }));
    $("live").textContent = "live";
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.method === "subscription" && message.params.result) {
      addBlock(message.params.result.height).catch(() => {});
      $("chain").textContent = $("chain").textContent.replace(/height \d+/, "height " + message.params.result.height);
    }
  };
  ws.onclose = () => { $("live").textContent = "reconnecting…"; setTimeout(live, 3000); };
}

async function start() {
  try {
    const status = await showStatus();
    $("conn").textContent = "connected";
    $("conn").className = "pill ok";
    await showBlocks(status.height);
    live();
    setInterval(() => showStatus().catch(() => {}), 5000);
  } catch (error) {
    $("conn").textContent = "not connected";
    $("conn").className = "pill bad";
    $("auth-box").hidden = false;
    $("auth-error").textContent = error.message;
  }
  $("tx-form").addEventListener("submit", (e) => { e.preventDefault(); showTx($("tx-id").value.trim()); });
  $("item-form").addEventListener("submit", (e) => { e.preventDefault(); showItem($("item-id").value.trim()); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) checkDocument(e.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (e) => { if (e.target.files.length) checkDocument(e.target.files[0]); });
  // For automation (and people who prefer the address bar): #tx=…, #item=… open at once.
  if (params.get("tx")) { $("tx-id").value = params.get("tx"); showTx(params.get("tx")); }
  if (params.get("item")) { $("item-id").value = params.get("item"); showItem(params.get("item")); }
  // #doctext=… checks a document made of that text, through the same hashing path as a drop.
  if (params.get("doctext")) checkDocument(new File([params.get("doctext")], "document.txt"));
}

start();
