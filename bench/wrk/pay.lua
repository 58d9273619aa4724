-- POST /api/v1/payments with a fresh Idempotency-Key per request (TOKEN from the environment).
-- POST_PATH and BODY replace the path and the body (a payment from the wallet, a transfer);
-- PREFER sends a Prefer header (respond-async: submitted, charged later by a worker).
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
local run = tostring(os.time())
local path = os.getenv("POST_PATH") or "/api/v1/payments"
local body = os.getenv("BODY")
  or '{"amount":"19.99","currency":"USD","payment_method":"credit_card","payment_method_token":"tok_visa"}'
local prefer = os.getenv("PREFER")
function request()
  n = n + 1
  local headers = {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%s-%d-%d", run, tid, n),
  }
  if prefer then
    headers["Prefer"] = prefer
  end
  return wrk.format("POST", path, headers, body)
end
