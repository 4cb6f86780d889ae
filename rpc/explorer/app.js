// The CyberMiles node's built-in explorer: one page, hash routes, no build step, no network
// beyond the node that served it. Every value comes from that node's JSON-RPC (HTTP POST to "/"
// on the same origin) and the live head from eth_subscribe("newHeads") over a WebSocket to the
// same origin. Chain data is only ever inserted as text (never as HTML): validator names, token
// symbols and logs are whatever someone put on chain.
//
// Routes: #/ (home), #/block/<number|hash>, #/tx/<hash>, #/address/<address>, #/validators,
// #/proposals. <main id="view"> carries data-page / data-key / data-state ("loading", "ready",
// "error") so tests (and curious users) can tell when a page has finished rendering.
"use strict";

const HOME_BLOCKS = 10;
const HOME_TXS = 10;
const ACCOUNT_SCAN_BLOCKS = 128;
const RECONNECT_MAX_MS = 10_000;
const WEI_DECIMALS = 18;
const TOPIC_TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
const TOPIC_APPROVAL = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925";
// System accounts (SPEC §2): their logs carry a JSON event in `data` (staking, governance...).
const SYSTEM_ACCOUNTS = {
  "0x0000000000000000000000000000000000c0de05": "staking module",
  "0x0000000000000000000000000000000000c0de06": "governance module",
  "0x0000000000000000000000000000000000c0de07": "chain parameters",
  "0x0000000000000000000000000000000000c0de08": "supply counters",
};

// ---------------------------------------------------------------------------------------------
// JSON-RPC over the page's own origin

class RpcError extends Error {
  constructor(error) {
    super(`${error.message} (code ${error.code})`);
    this.code = error.code;
    this.data = error.data;
  }
}

let nextId = 1;

async function post(payload) {
  const response = await fetch("/", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status} from the node`);
  return response.json();
}

async function rpc(method, params = []) {
  const answer = await post({ jsonrpc: "2.0", id: nextId++, method, params });
  if (answer.error) throw new RpcError(answer.error);
  return answer.result;
}

// Several calls in one request; each entry is {result} or {error: RpcError}, in call order.
async function batch(calls) {
  if (calls.length === 0) return [];
  const first = nextId;
  nextId += calls.length;
  const answers = await post(
    calls.map(([method, params], i) => ({ jsonrpc: "2.0", id: first + i, method, params })),
  );
  if (!Array.isArray(answers)) throw new RpcError(answers.error || { code: 0, message: "bad batch" });
  const byId = new Map(answers.map((a) => [a.id, a]));
  return calls.map((_, i) => {
    const a = byId.get(first + i);
    if (!a) return { error: new Error("no answer") };
    return a.error ? { error: new RpcError(a.error) } : { result: a.result };
  });
}

const hex = (n) => "0x" + BigInt(n).toString(16);

// ---------------------------------------------------------------------------------------------
// Formatting

function big(value) {
  if (value === null || value === undefined || value === "") return 0n;
  return BigInt(value);
}

function groupThousands(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// An integer amount with `decimals` decimals, exact: "1,234.5".
function formatUnits(amount, decimals) {
  const value = big(amount);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const scale = 10n ** BigInt(decimals);
  const whole = groupThousands((abs / scale).toString());
  const fraction = decimals > 0 ? (abs % scale).toString().padStart(decimals, "0").replace(/0+$/, "") : "";
  return (negative ? "-" : "") + whole + (fraction ? "." + fraction : "");
}

const cmt = (wei) => `${formatUnits(wei, WEI_DECIMALS)} CMT`;
const gwei = (wei) => `${formatUnits(wei, 9)} gwei`;
const number = (value) => groupThousands(big(value).toString());
const short = (h) => (h && h.length > 14 ? `${h.slice(0, 6)}…${h.slice(-4)}` : h || "");

function age(timestamp) {
  const seconds = Math.max(0, Math.floor(Date.now() / 1000) - Number(big(timestamp)));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function utc(timestamp) {
  return new Date(Number(big(timestamp)) * 1000).toISOString().replace(".000Z", " UTC").replace("T", " ");
}

function utf8(hexData) {
  const clean = (hexData || "0x").slice(2);
  const bytes = new Uint8Array(clean.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

function jsonOf(hexData) {
  try {
    return JSON.parse(utf8(hexData));
  } catch {
    return undefined;
  }
}

const words = (hexData) => (hexData || "0x").slice(2).match(/.{64}/g) || [];
const wordAddress = (word) => "0x" + word.slice(24);

// ---------------------------------------------------------------------------------------------
// DOM (text only: chain data never becomes markup)

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const link = (href, text, attrs = {}) => h("a", { href, ...attrs }, text);
const mono = (text, attrs = {}) => h("span", { class: "mono", ...attrs }, text);

function addressLink(address, { full = false } = {}) {
  if (!address) return h("span", { class: "muted" }, "—");
  const lower = address.toLowerCase();
  const label = SYSTEM_ACCOUNTS[lower];
  return h(
    "a",
    { href: `#/address/${lower}`, class: "mono", title: lower, dataset: { address: lower } },
    full ? lower : short(lower),
    label ? h("span", { class: "tag" }, label) : null,
  );
}

const blockLink = (n) => link(`#/block/${big(n)}`, `#${number(n)}`, { class: "mono" });
const txLink = (hash, { full = false } = {}) =>
  link(`#/tx/${hash}`, full ? hash : short(hash), { class: "mono", title: hash, dataset: { tx: hash } });

// A two-column table of fields; each row is tagged data-field=<name> for tests and styling.
function fields(rows) {
  return h(
    "table",
    { class: "fields" },
    h(
      "tbody",
      {},
      rows
        .filter(Boolean)
        .map(([name, label, value]) =>
          h("tr", { dataset: { field: name } }, h("th", {}, label), h("td", { class: "value" }, value)),
        ),
    ),
  );
}

function table(headings, rows, empty = "Nothing yet.") {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { class: "list" },
      h("thead", {}, h("tr", {}, headings.map((x) => h("th", {}, x)))),
      h("tbody", {}, rows),
    ),
  );
}

const card = (title, ...children) => h("section", { class: "card" }, h("h2", {}, title), ...children);
const badge = (text, kind) => h("span", { class: `badge ${kind}` }, text);
const pre = (text, attrs = {}) => h("pre", { class: "code", ...attrs }, text);

function hexBlock(data, limit = 4096) {
  const text = data || "0x";
  if (text.length <= limit) return pre(text);
  const box = pre(text.slice(0, limit) + "…");
  const more = h("button", { type: "button", class: "more", onclick: () => { box.textContent = text; more.remove(); } },
    `show all ${number((text.length - 2) / 2)} bytes`);
  return h("div", {}, box, more);
}

// ---------------------------------------------------------------------------------------------
// Views: each returns the page's nodes (async); the router puts them in <main>.

async function homeView() {
  const head = big(await rpc("eth_blockNumber"));
  const count = Number(head + 1n < BigInt(HOME_BLOCKS) ? head + 1n : BigInt(HOME_BLOCKS));
  const calls = [];
  for (let i = 0n; i < BigInt(count); i++) calls.push(["eth_getBlockByNumber", [hex(head - i), true]]);
  calls.push(["eth_chainId", []], ["eth_gasPrice", []], ["net_peerCount", []], ["eth_syncing", []]);
  const answers = await batch(calls);
  const blocks = answers.slice(0, count).map((a) => a.result).filter(Boolean);
  const [chainId, gasPrice, peers, syncing] = answers.slice(count).map((a) => a.result);
  const txs = blocks.flatMap((b) => b.transactions.map((t) => ({ ...t, timestamp: b.timestamp }))).slice(0, HOME_TXS);
  return [
    h("h1", {}, "Chain"),
    h(
      "div",
      { class: "stats" },
      stat("Head", blockLink(head)),
      stat("Chain id", number(chainId)),
      stat("Gas price", gwei(gasPrice)),
      stat("Peers", number(peers || 0)),
      stat("Syncing", syncing ? "yes" : "no"),
    ),
    h(
      "div",
      { class: "columns" },
      card(
        "Latest blocks",
        table(
          ["Block", "Age", "Txs", "Gas used", "Hash"],
          blocks.map((b) =>
            h(
              "tr",
              { dataset: { block: big(b.number).toString() } },
              h("td", {}, blockLink(b.number)),
              h("td", { title: utc(b.timestamp) }, age(b.timestamp)),
              h("td", { class: "num" }, b.transactions.length),
              h("td", { class: "num" }, number(b.gasUsed)),
              h("td", {}, mono(short(b.hash), { title: b.hash })),
            ),
          ),
        ),
      ),
      card(
        "Latest transactions",
        table(
          ["Transaction", "Block", "From", "To", "Value"],
          txs.map((t) =>
            h(
              "tr",
              {},
              h("td", {}, txLink(t.hash)),
              h("td", {}, blockLink(t.blockNumber)),
              h("td", {}, addressLink(t.from)),
              h("td", {}, t.to ? addressLink(t.to) : h("span", { class: "muted" }, txKind(t))),
              h("td", { class: "num" }, cmt(t.value)),
            ),
          ),
          `No transactions in the last ${count} blocks.`,
        ),
      ),
    ),
  ];
}

const stat = (label, value) => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "big" }, value));

// Staking/governance transactions are legacy, to empty, gas price 0, gas 0, JSON data (SPEC §5).
function txKind(tx) {
  if (tx.to) return tx.input && tx.input !== "0x" ? "call" : "transfer";
  if (big(tx.gas) === 0n && big(tx.gasPrice) === 0n) {
    const envelope = jsonOf(tx.input);
    if (envelope && typeof envelope.type === "string") return envelope.type;
  }
  return "contract creation";
}

async function blockView(id) {
  const byHash = /^0x[0-9a-fA-F]{64}$/.test(id);
  if (!byHash && !/^\d+$/.test(id)) throw new Error(`not a block number or hash: ${id}`);
  const block = byHash
    ? await rpc("eth_getBlockByHash", [id, true])
    : await rpc("eth_getBlockByNumber", [hex(id), true]);
  if (!block) return notFound(`Block ${id} is not on this chain (yet).`);
  const n = big(block.number);
  return [
    h(
      "div",
      { class: "title" },
      h("h1", {}, `Block #${number(n)}`),
      h(
        "span",
        { class: "pager" },
        n > 0n ? link(`#/block/${n - 1n}`, "← previous") : null,
        link(`#/block/${n + 1n}`, "next →"),
      ),
    ),
    card(
      "Header",
      fields([
        ["number", "Number", mono(number(n))],
        ["hash", "Hash", mono(block.hash)],
        ["parentHash", "Parent", n > 0n ? link(`#/block/${block.parentHash}`, block.parentHash, { class: "mono" }) : mono(block.parentHash)],
        ["timestamp", "Time", `${utc(block.timestamp)} (${age(block.timestamp)})`],
        ["miner", "Fee recipient", addressLink(block.miner, { full: true })],
        ["transactions", "Transactions", number(block.transactions.length)],
        ["gasUsed", "Gas used", `${number(block.gasUsed)} of ${number(block.gasLimit)}`],
        block.baseFeePerGas !== undefined && ["baseFeePerGas", "Base fee", gwei(block.baseFeePerGas)],
        ["size", "Size", `${number(block.size)} bytes`],
        ["stateRoot", "State root", mono(block.stateRoot)],
        ["transactionsRoot", "Transactions root", mono(block.transactionsRoot)],
        ["receiptsRoot", "Receipts root", mono(block.receiptsRoot)],
        ["mixHash", "Mix hash (VRF randomness)", mono(block.mixHash)],
        ["extraData", "Extra data", mono(block.extraData)],
      ]),
    ),
    card(
      "Transactions",
      table(
        ["#", "Transaction", "Kind", "From", "To", "Value"],
        block.transactions.map((t) =>
          h(
            "tr",
            { dataset: { tx: t.hash } },
            h("td", { class: "num" }, number(t.transactionIndex)),
            h("td", {}, txLink(t.hash)),
            h("td", {}, txKind(t)),
            h("td", { class: "from" }, addressLink(t.from)),
            h("td", {}, t.to ? addressLink(t.to) : h("span", { class: "muted" }, "—")),
            h("td", { class: "num" }, cmt(t.value)),
          ),
        ),
        "No transactions in this block.",
      ),
    ),
  ];
}

async function txView(hash) {
  if (!/^0x[0-9a-fA-F]{64}$/.test(hash)) throw new Error(`not a transaction hash: ${hash}`);
  const [txAnswer, receiptAnswer] = await batch([
    ["cmt_getTransactionByHash", [hash]],
    ["eth_getTransactionReceipt", [hash]],
  ]);
  if (txAnswer.error) throw txAnswer.error;
  const tx = txAnswer.result;
  if (!tx) return notFound(`Transaction ${hash} is not known to this node.`);
  const receipt = receiptAnswer.result;
  const pending = tx.blockNumber === null;
  const status = pending
    ? badge("pending", "warn")
    : big(receipt.status) === 1n
      ? badge("success", "ok")
      : badge("failed", "bad");
  const price = receipt ? big(receipt.effectiveGasPrice) : big(tx.gasPrice);
  const sections = [
    h("h1", {}, "Transaction"),
    card(
      "Overview",
      fields([
        ["hash", "Hash", mono(tx.hash)],
        ["status", "Status", status],
        ["block", "Block", pending ? h("span", { class: "muted" }, "in the mempool") : [blockLink(tx.blockNumber), h("span", { class: "muted" }, ` (index ${big(tx.transactionIndex)}, ${age(tx.blockTimestamp || 0)})`)]],
        ["from", "From", addressLink(tx.from, { full: true })],
        tx.to
          ? ["to", "To", addressLink(tx.to, { full: true })]
          : receipt && receipt.contractAddress
            ? ["contractAddress", "Created contract", addressLink(receipt.contractAddress, { full: true })]
            : ["to", "To", h("span", { class: "muted" }, txKind(tx))],
        ["value", "Value", cmt(tx.value)],
        ["nonce", "Nonce", number(tx.nonce)],
        ["type", "Type", `${big(tx.type)} (${["legacy", "EIP-2930", "EIP-1559", "blob", "EIP-7702"][Number(big(tx.type))] || "?"})`],
        ["gas", "Gas limit", number(tx.gas)],
        receipt && ["gasUsed", "Gas used", number(receipt.gasUsed)],
        ["effectiveGasPrice", receipt ? "Effective gas price" : "Gas price", gwei(price)],
        tx.maxFeePerGas !== undefined && ["maxFeePerGas", "Max fee / priority fee", `${gwei(tx.maxFeePerGas)} / ${gwei(tx.maxPriorityFeePerGas)}`],
        receipt && !tx.cmtInput && ["fee", "Fee", cmt(big(receipt.gasUsed) * price)],
        ["input", `Input (${number((tx.input.length - 2) / 2)} bytes)`, hexBlock(tx.input, 1024)],
      ]),
    ),
  ];
  if (tx.cmtInput) sections.push(cmtSection(tx));
  if (receipt) sections.push(card(`Logs (${receipt.logs.length})`, await logsView(receipt.logs)));
  return sections;
}

// A staking or governance transaction: its JSON envelope and Travis's deliver_tx result.
function cmtSection(tx) {
  const result = tx.txResult || {};
  let events;
  try {
    events = result.log ? JSON.parse(result.log) : [];
  } catch {
    events = null;
  }
  const fee = result.fee ? `${cmt(result.fee.value || 0)} (${atobSafe(result.fee.key)})` : "—";
  return card(
    `CyberMiles ${tx.cmtInput.type.split("/")[0]} transaction`,
    fields([
      ["cmtType", "Kind", mono(tx.cmtInput.type)],
      ["cmtHash", "Tendermint hash", mono(tx.cmtHash || "")],
      ["envelope", "Envelope", pre(JSON.stringify(tx.cmtInput, null, 2), { dataset: { testid: "envelope" } })],
      result.code !== undefined && ["code", "Result code", result.code === 0 ? badge("0 (ok)", "ok") : badge(String(result.code), "bad")],
      result.gasUsed !== undefined && ["cmtGasUsed", "Charged gas", number(result.gasUsed)],
      ["cmtFee", "Fee", fee],
      ["result", "deliver_tx", pre(JSON.stringify({ ...result, log: events ?? result.log }, null, 2))],
    ]),
  );
}

function atobSafe(text) {
  try {
    return atob(text || "");
  } catch {
    return text;
  }
}

const tokens = new Map(); // address -> Promise<{symbol, decimals} | null>

function tokenInfo(address) {
  if (!tokens.has(address)) {
    const call = (data) => ["eth_call", [{ to: address, data }, "latest"]];
    tokens.set(
      address,
      batch([call("0x95d89b41"), call("0x313ce567")]).then(([symbol, decimals]) => {
        const info = {
          symbol: symbol.result ? abiString(symbol.result) : null,
          decimals: decimals.result && decimals.result.length >= 66 ? Number(big(decimals.result)) : null,
        };
        return info.decimals !== null && info.decimals <= 77 ? info : { symbol: info.symbol, decimals: null };
      }).catch(() => ({ symbol: null, decimals: null })),
    );
  }
  return tokens.get(address);
}

// An ABI-encoded string return value (or a bytes32 one, as some old tokens answer).
function abiString(data) {
  const w = words(data);
  try {
    if (w.length >= 3) {
      const length = Number(BigInt("0x" + w[1]));
      return utf8("0x" + w.slice(2).join("").slice(0, 2 * length));
    }
    if (w.length === 1) return utf8("0x" + w[0].replace(/(00)+$/, ""));
  } catch {
    /* not text */
  }
  return null;
}

function tokenAmount(raw, info) {
  const text = info.decimals === null ? number(raw) : formatUnits(raw, info.decimals);
  return h("span", { class: "amount", title: `${raw} (raw)`, dataset: { raw: raw.toString() } }, `${text}${info.symbol ? " " + info.symbol : ""}`);
}

async function logsView(logs) {
  if (logs.length === 0) return h("p", { class: "muted" }, "No logs.");
  const items = await Promise.all(logs.map(logView));
  return h("ol", { class: "logs" }, items);
}

async function logView(log) {
  const address = log.address.toLowerCase();
  const topics = log.topics;
  let decoded = null;
  if ((topics[0] === TOPIC_TRANSFER || topics[0] === TOPIC_APPROVAL) && topics.length === 3 && words(log.data).length === 1) {
    const info = await tokenInfo(address);
    const [a, b] = topics[0] === TOPIC_TRANSFER ? ["from", "to"] : ["owner", "spender"];
    decoded = event(topics[0] === TOPIC_TRANSFER ? "Transfer" : "Approval", [
      [a, addressLink(wordAddress(topics[1].slice(2)), { full: true })],
      [b, addressLink(wordAddress(topics[2].slice(2)), { full: true })],
      ["value", tokenAmount(big(log.data), info)],
    ]);
  } else if (topics[0] === TOPIC_TRANSFER && topics.length === 4) {
    decoded = event("Transfer", [
      ["from", addressLink(wordAddress(topics[1].slice(2)), { full: true })],
      ["to", addressLink(wordAddress(topics[2].slice(2)), { full: true })],
      ["tokenId", mono(big(topics[3]).toString())],
    ]);
  } else if (SYSTEM_ACCOUNTS[address]) {
    const body = jsonOf(log.data);
    if (body && typeof body === "object") {
      const name = body.event || body.kind || "event";
      decoded = event(
        name,
        Object.entries(body)
          .filter(([key, value]) => value !== null && key !== "event" && key !== "kind")
          .map(([key, value]) => [key, eventValue(key, value)]),
      );
    }
  }
  return h(
    "li",
    { class: "log", dataset: { event: decoded ? decoded.dataset.name : "raw", index: big(log.logIndex).toString() } },
    h("div", { class: "log-head" }, h("span", { class: "muted" }, `#${big(log.logIndex)} `), addressLink(address, { full: true })),
    decoded,
    h(
      "details",
      { class: "raw", open: decoded ? null : true },
      h("summary", {}, "raw topics and data"),
      fields([
        ...topics.map((t, i) => [`topic${i}`, `topic ${i}`, mono(t)]),
        ["data", "data", hexBlock(log.data, 1024)],
      ]),
    ),
  );
}

// A field of a module event: addresses link, amounts (wei) read in CMT, the rest as JSON text.
function eventValue(key, value) {
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  if (/^0x[0-9a-fA-F]{40}$/.test(text)) return addressLink(text, { full: true });
  if (/amount/.test(key) && /^\d+$/.test(text)) return h("span", { class: "amount", title: `${text} wei` }, cmt(text));
  return mono(text);
}

function event(name, args) {
  return h(
    "div",
    { class: "event", dataset: { name } },
    h("span", { class: "event-name" }, name),
    h("table", { class: "args" }, h("tbody", {}, args.map(([key, value]) => h("tr", { dataset: { arg: key } }, h("th", {}, key), h("td", {}, value))))),
  );
}

async function addressView(id) {
  if (!/^0x[0-9a-fA-F]{40}$/.test(id)) throw new Error(`not an address: ${id}`);
  const address = id.toLowerCase();
  const [balance, nonce, code, delegations, candidate, head] = await batch([
    ["eth_getBalance", [address, "latest"]],
    ["eth_getTransactionCount", [address, "latest"]],
    ["eth_getCode", [address, "latest"]],
    ["cmt_queryDelegator", [address, 0]],
    ["cmt_queryValidator", [address, 0]],
    ["eth_blockNumber", []],
  ]);
  for (const answer of [balance, nonce, code, head]) if (answer.error) throw answer.error;
  const codeSize = (code.result.length - 2) / 2;
  const kind = SYSTEM_ACCOUNTS[address] ? `system account (${SYSTEM_ACCOUNTS[address]})` : codeSize > 0 ? "contract" : "account";
  const sections = [
    h("h1", {}, h("span", {}, kind === "contract" ? "Contract " : "Account "), mono(address, { class: "mono wrap" })),
    card(
      "Overview",
      fields([
        ["balance", "Balance", [h("span", { class: "big-amount", dataset: { wei: big(balance.result).toString() } }, cmt(balance.result)), h("span", { class: "muted wei" }, ` ${big(balance.result)} wei`)]],
        ["nonce", "Nonce", number(nonce.result)],
        ["kind", "Kind", kind],
        ["code", "Code", codeSize > 0 ? [`${number(codeSize)} bytes`, hexBlock(code.result)] : h("span", { class: "muted" }, "none")],
      ]),
    ),
  ];
  if (candidate.result && candidate.result.data) sections.push(candidateCard(candidate.result.data));
  const rows = (delegations.result && delegations.result.data) || [];
  sections.push(
    card(
      "Delegations (cmt_queryDelegator)",
      table(
        ["Validator", "Delegated", "Award", "Pending withdraw", "Shares", "Voting power", "Comp rate", "State"],
        rows.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, addressLink(d.validator_address)),
            h("td", { class: "num" }, cmt(d.delegate_amount)),
            h("td", { class: "num" }, cmt(d.award_amount)),
            h("td", { class: "num" }, cmt(d.pending_withdraw_amount)),
            h("td", { class: "num" }, formatUnits(d.shares, WEI_DECIMALS)),
            h("td", { class: "num" }, number(d.voting_power)),
            h("td", {}, d.comp_rate),
            h("td", {}, d.state),
          ),
        ),
        "No delegations from this address.",
      ),
    ),
  );
  sections.push(await recentTransactions(address, big(head.result)));
  return sections;
}

// The node keeps no per-address index: scan the last blocks in one batch (cheap on a devnet).
async function recentTransactions(address, head) {
  const from = head >= BigInt(ACCOUNT_SCAN_BLOCKS) ? head - BigInt(ACCOUNT_SCAN_BLOCKS) + 1n : 0n;
  const calls = [];
  for (let n = head; n >= from; n--) calls.push(["eth_getBlockByNumber", [hex(n), true]]);
  const blocks = (await batch(calls)).map((a) => a.result).filter(Boolean);
  const mine = blocks.flatMap((b) =>
    b.transactions.filter((t) => t.from.toLowerCase() === address || (t.to && t.to.toLowerCase() === address)),
  );
  return card(
    "Recent transactions",
    h("p", { class: "muted small" }, `Blocks #${number(from)}–#${number(head)} (the node keeps no per-address index; older transactions are not listed).`),
    table(
      ["Transaction", "Block", "Direction", "Counterparty", "Value"],
      mine.map((t) => {
        const out = t.from.toLowerCase() === address;
        return h(
          "tr",
          {},
          h("td", {}, txLink(t.hash)),
          h("td", {}, blockLink(t.blockNumber)),
          h("td", {}, out ? badge("out", "warn") : badge("in", "ok")),
          h("td", {}, out ? (t.to ? addressLink(t.to) : txKind(t)) : addressLink(t.from)),
          h("td", { class: "num" }, cmt(t.value)),
        );
      }),
      "None in these blocks.",
    ),
  );
}

function candidateCard(c) {
  return card(
    "Validator candidate (cmt_queryValidator)",
    fields([
      ["name", "Name", (c.description && c.description.name) || "—"],
      ["state", "State", c.state],
      ["votingPower", "Voting power", number(c.voting_power)],
      ["shares", "Shares", `${formatUnits(c.shares, WEI_DECIMALS)} of max ${formatUnits(c.max_shares, WEI_DECIMALS)}`],
      ["compRate", "Comp rate", c.comp_rate],
      ["delegators", "Delegators", number(c.num_of_delegators)],
      ["pubKey", "Public key", mono(c.pub_key ? c.pub_key.value : "")],
      ["verified", "Verified / active", `${c.verified} / ${c.active}`],
      ["website", "Website", (c.description && c.description.website) || "—"],
      ["delegationsTo", "Delegations to it", h("span", { class: "muted" }, "not indexed by the node (cmt_queryDelegator answers per delegator)")],
    ]),
  );
}

async function validatorsView() {
  const answer = await rpc("cmt_queryValidators", [0]);
  const list = answer.data || [];
  const total = list.reduce((sum, v) => sum + BigInt(v.voting_power || 0), 0n);
  return [
    h("h1", {}, "Validators"),
    h("p", { class: "muted" }, `Active candidates at block #${number(answer.height)}.`),
    card(
      `Candidates (${list.length})`,
      table(
        ["Rank", "Name", "Owner", "State", "Voting power", "Shares (CMT)", "Comp rate", "Delegators", "Verified"],
        list.map((v) =>
          h(
            "tr",
            { dataset: { validator: v.owner_address } },
            h("td", { class: "num" }, v.rank ?? ""),
            h("td", {}, (v.description && v.description.name) || "—"),
            h("td", {}, addressLink(v.owner_address)),
            h("td", {}, badge(v.state, v.state === "Validator" ? "ok" : "warn")),
            h("td", { class: "num" }, `${number(v.voting_power)}${total > 0n ? ` (${(Number((BigInt(v.voting_power) * 10000n) / total) / 100).toFixed(2)} %)` : ""}`),
            h("td", { class: "num" }, formatUnits(v.shares, WEI_DECIMALS)),
            h("td", {}, v.comp_rate),
            h("td", { class: "num" }, number(v.num_of_delegators)),
            h("td", {}, v.verified),
          ),
        ),
        "No candidates.",
      ),
      h("p", { class: "muted small" }, "A validator's delegations are not indexed by the node; an account page lists the delegations that account made."),
    ),
  ];
}

async function proposalsView() {
  const answer = await rpc("cmt_queryProposals", [0]);
  const list = answer.data || [];
  return [
    h("h1", {}, "Governance proposals"),
    card(
      `Proposals (${list.length})`,
      table(
        ["Id", "Type", "Proposer", "Block", "Expires", "Votes", "Result", "Detail"],
        list.map((p) =>
          h(
            "tr",
            {},
            h("td", {}, mono(short(String(p.Id)), { title: String(p.Id) })),
            h("td", {}, p.Type),
            h("td", {}, addressLink(p.Proposer)),
            h("td", {}, blockLink(p.BlockHeight)),
            h("td", {}, p.ExpireBlockHeight ? `block #${number(p.ExpireBlockHeight)}` : p.ExpireTimestamp ? utc(p.ExpireTimestamp) : "—"),
            h("td", {}, votes(p.Votes)),
            h("td", {}, p.Result ? badge(p.Result, p.Result === "Approved" ? "ok" : "bad") : badge("open", "warn"), p.ResultMsg ? ` ${p.ResultMsg}` : ""),
            h("td", {}, pre(JSON.stringify(p.Detail, null, 1), { class: "code small" })),
          ),
        ),
        "No proposals yet.",
      ),
    ),
  ];
}

function votes(byVoter) {
  const answers = Object.values(byVoter || {});
  const yes = answers.filter((a) => a === "Y").length;
  return `${yes} yes, ${answers.length - yes} no`;
}

function notFound(message) {
  return [h("h1", {}, "Not found"), h("p", { class: "muted", dataset: { testid: "not-found" } }, message)];
}

// ---------------------------------------------------------------------------------------------
// Router

const ROUTES = [
  [/^\/?$/, "home", () => homeView()],
  [/^\/block\/([^/]+)$/, "block", (id) => blockView(id)],
  [/^\/tx\/([^/]+)$/, "tx", (id) => txView(id)],
  [/^\/address\/([^/]+)$/, "address", (id) => addressView(id)],
  [/^\/validators$/, "validators", () => validatorsView()],
  [/^\/proposals$/, "proposals", () => proposalsView()],
];

let renderSeq = 0;

async function render() {
  const route = decodeURIComponent(location.hash.replace(/^#/, ""));
  const view = document.getElementById("view");
  const seq = ++renderSeq;
  let page = "unknown";
  let key = "";
  let build = async () => notFound(`No page at ${route}.`);
  for (const [pattern, name, make] of ROUTES) {
    const match = pattern.exec(route);
    if (match) {
      page = name;
      key = (match[1] || "").toLowerCase();
      build = () => make(match[1]);
      break;
    }
  }
  view.dataset.page = page;
  view.dataset.key = key;
  view.dataset.state = "loading";
  let nodes;
  let state = "ready";
  try {
    nodes = await build();
  } catch (error) {
    state = "error";
    nodes = [h("h1", {}, "Something went wrong"), h("p", { class: "error" }, String(error.message || error))];
  }
  if (seq !== renderSeq) return; // a newer navigation won
  view.replaceChildren(...nodes);
  view.dataset.state = state;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${route.split("/")[1] || ""}`);
}

// The search box: a block number, a transaction or block hash, or an address.
async function search(text) {
  const q = text.trim();
  if (/^\d+$/.test(q)) return go(`#/block/${q}`);
  if (/^0x[0-9a-fA-F]{40}$/.test(q)) return go(`#/address/${q.toLowerCase()}`);
  if (/^0x[0-9a-fA-F]{64}$/.test(q)) {
    const [tx, block] = await batch([
      ["eth_getTransactionByHash", [q]],
      ["eth_getBlockByHash", [q, false]],
    ]);
    if (tx.result) return go(`#/tx/${q.toLowerCase()}`);
    if (block.result) return go(`#/block/${q.toLowerCase()}`);
    return notice(`No transaction or block with hash ${q}.`);
  }
  notice("Enter a block number, a transaction or block hash (0x + 64 hex digits) or an address (0x + 40 hex digits).");
}

function go(hash) {
  notice(null);
  if (location.hash === hash) render();
  else location.hash = hash;
}

function notice(message) {
  const box = document.getElementById("notice");
  box.hidden = !message;
  box.textContent = message || "";
}

// ---------------------------------------------------------------------------------------------
// Live head over WebSocket

let reconnectDelay = 500;
let homeRefresh = null;

function connectLive() {
  const live = document.getElementById("live");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  const subscribeId = nextId++;
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ jsonrpc: "2.0", id: subscribeId, method: "eth_subscribe", params: ["newHeads"] }));
  });
  ws.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.id === subscribeId) {
      if (data.error) return setLive("offline", `no live head: ${data.error.message}`);
      reconnectDelay = 500;
      setLive("live", "live");
      rpc("eth_getBlockByNumber", ["latest", false]).then(showHead, () => {});
    } else if (data.method === "eth_subscription") {
      showHead(data.params.result);
    }
  });
  ws.addEventListener("close", () => {
    setLive("offline", "reconnecting…");
    setTimeout(connectLive, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
  });
  function setLive(state, label) {
    live.dataset.state = state;
    document.getElementById("live-label").textContent = label;
  }
}

let headNumber = -1n;

function showHead(header) {
  if (!header) return;
  const n = big(header.number);
  if (n < headNumber) return;
  headNumber = n;
  document.getElementById("head-number").textContent = `#${number(n)}`;
  document.getElementById("head-link").href = `#/block/${n}`;
  document.getElementById("live").dataset.head = n.toString();
  document.getElementById("head-link").title = `${header.hash} · ${utc(header.timestamp)}`;
  const view = document.getElementById("view");
  // The home page follows the head: re-read its lists, at most one refresh at a time.
  if (view.dataset.page === "home" && view.dataset.state !== "loading" && !homeRefresh) {
    homeRefresh = render().finally(() => {
      homeRefresh = null;
    });
  }
}

// ---------------------------------------------------------------------------------------------

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  search(document.getElementById("search-input").value).catch((error) => notice(String(error.message || error)));
});
window.addEventListener("hashchange", () => {
  notice(null);
  render();
});
rpc("web3_clientVersion").then((v) => (document.getElementById("client-version").textContent = v), () => {});
render();
connectLive();
