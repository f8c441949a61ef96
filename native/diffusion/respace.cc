#include "diffusion/respace.h"

#include <cerrno>
#include <cfenv>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>
#include <stdexcept>

namespace gd {

namespace {

// Quotes the spec, shortened: a hostile one can be megabytes long.
[[noreturn]] void fail(const std::string& spec, const std::string& why) {
  const std::string shown = spec.size() <= 60 ? spec : spec.substr(0, 40) + "... (" + std::to_string(spec.size()) + " characters)";
  throw std::invalid_argument("timestepRespacing '" + shown + "': " + why);
}

// A non-negative decimal integer, surrounding spaces allowed (as Python's int()).
int64_t parse_count(const std::string& spec, std::string text) {
  const auto first = text.find_first_not_of(' ');
  const auto last = text.find_last_not_of(' ');
  text = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 12) {
    fail(spec, "expected a step count such as 250, sections such as 10,15,20, or ddimN; got '" + text.substr(0, 40) + (text.size() > 40 ? "...'" : "'"));
  }
  return std::stoll(text);
}

std::vector<int64_t> ddim_stride(int64_t T, const std::string& spec) {
  const int64_t wanted = parse_count(spec, spec.substr(4));
  // range(0, T, stride) has ceil(T / stride) elements; the smallest stride that gives `wanted`.
  for (int64_t stride = 1; stride < T; ++stride) {
    if ((T + stride - 1) / stride == wanted) {
      std::vector<int64_t> kept;
      for (int64_t k = 0; k < T; k += stride) kept.push_back(k);
      return kept;
    }
  }
  std::ostringstream msg;
  msg << "no integer stride takes exactly " << wanted << " of " << T << " steps";
  fail(spec, msg.str());
}

}  // namespace

std::vector<int64_t> space_timesteps(int64_t T, const std::string& spec) {
  if (T < 1) throw std::invalid_argument("timestepRespacing needs a positive number of timesteps");
  if (T > kMaxTimesteps) {
    throw std::invalid_argument("timestepRespacing: timesteps must be at most " + std::to_string(kMaxTimesteps) + "; got " + std::to_string(T));
  }
  if (spec.rfind("ddim", 0) == 0) return ddim_stride(T, spec);
  std::vector<int64_t> counts;
  size_t start = 0;
  while (true) {
    const size_t comma = spec.find(',', start);
    counts.push_back(parse_count(spec, spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  const int64_t n = static_cast<int64_t>(counts.size());
  const int64_t size_per = T / n, extra = T % n;
  std::set<int64_t> kept;
  int64_t section_start = 0;
  // std::nearbyint rounds half to even in the default mode, as Python's round() does.
  const int old_mode = std::fegetround();
  std::fesetround(FE_TONEAREST);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    const int64_t count = counts[static_cast<size_t>(i)];
    if (size < count) {
      std::fesetround(old_mode);
      std::ostringstream msg;
      msg << "section " << i << " has " << size << " steps, too few to take " << count;
      fail(spec, msg.str());
    }
    // The same float64 accumulation as the reference, so the rounding ties fall alike.
    const double stride = count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
    double position = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      kept.insert(section_start + static_cast<int64_t>(std::nearbyint(position)));
      position += stride;
    }
    section_start += size;
  }
  std::fesetround(old_mode);
  if (kept.empty()) fail(spec, "takes no steps");
  return {kept.begin(), kept.end()};
}

Schedule respace(const at::Tensor& base_betas, const std::vector<int64_t>& kept, bool rescale_timesteps) {
  at::Tensor betas = base_betas.to(at::kDouble).contiguous();
  const int64_t T = betas.size(0);
  at::Tensor ab = at::cumprod(1. - betas, 0);
  auto acc = ab.accessor<double, 1>();
  std::vector<double> new_betas;
  double last = 1.0;
  int64_t previous = -1;
  for (int64_t k : kept) {
    if (k <= previous || k >= T) {
      throw std::invalid_argument("respacing needs ascending timesteps below " + std::to_string(T));
    }
    new_betas.push_back(1.0 - acc[k] / last);
    last = acc[k];
    previous = k;
  }
  Schedule s = schedule_from_betas(at::tensor(new_betas, at::kDouble));
  if (static_cast<int64_t>(kept.size()) != T) s.timestep_map.map = at::tensor(kept, at::kLong);
  if (rescale_timesteps) s.timestep_map.rescale = 1000.0 / static_cast<double>(T);
  return s;
}

}  // namespace gd
