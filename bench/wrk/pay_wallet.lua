-- POST /api/v1/payments paid from the caller's wallet (payment_method "wallet": no provider
-- call, the ledger's guard checks the balance), a fresh Idempotency-Key per request.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
local run = tostring(os.time())
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/payments", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("wallet-%s-%d-%d", run, tid, n),
  }, '{"amount":"0.19","currency":"USD","payment_method":"wallet"}')
end
