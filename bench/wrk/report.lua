-- Shared by the wrk scenarios: one JSON line with throughput, latency percentiles and errors.
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"rps":%.1f,"p50_ms":%.2f,"p99_ms":%.2f,"p999_ms":%.2f,"requests":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    summary.requests, errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
