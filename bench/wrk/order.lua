-- POST /api/v1/orders (TOKEN from the environment).
dofile(os.getenv("WRK_DIR") .. "/report.lua")
function request()
  return wrk.format("POST", "/api/v1/orders", {
    ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
    ["Content-Type"] = "application/json",
  }, '{"currency":"USD","items":[{"product_id":"sku-1","name":"Mug","quantity":2,"unit_price":"4.50"},{"product_id":"sku-2","name":"Kite","quantity":1,"unit_price":"30.00"}]}')
end
