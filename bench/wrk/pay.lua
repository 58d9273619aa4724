-- POST /api/v1/payments with a fresh Idempotency-Key per request (TOKEN from the environment).
-- POST_PATH and BODY replace the path and the body (a payment from the wallet, a transfer).
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
function request()
  n = n + 1
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%s-%d-%d", run, tid, n),
  }, body)
end
