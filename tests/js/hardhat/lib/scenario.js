// What the scenario scripts and tests share.

// The one output convention of the scripts: a single JSON object on the last stdout line
// (bigints as decimal strings), which tests/e2e/js_clients.py parses.
function report(facts) {
  console.log(JSON.stringify(facts, (_key, value) => (typeof value === "bigint" ? value.toString() : value)));
}

// The reason string of a refused call or transaction: hardhat-ethers passes the node's error
// through with the revert data (Error(string)) in `data`, undecoded.
function revertReason(contract, error) {
  const data = error.data ?? error.error?.data;
  if (typeof data !== "string") {
    return null;
  }
  const parsed = contract.interface.parseError(data);
  return parsed?.name === "Error" ? parsed.args[0] : null;
}

// A script's entry point: failures exit non-zero with the error printed.
function runMain(main) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}

module.exports = { report, revertReason, runMain };
