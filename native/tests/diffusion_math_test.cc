// The C++ diffusion core against test/fixtures/diffusion (written by
// scripts/fixtures/diffusion_schedules.py from the math doc, independently of this code), plus
// its error messages and grad-mode behaviour. Run from the repository root, or pass the root
// as the first argument. Exit status 0 when every check holds.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "diffusion/denoiser.h"
#include "diffusion/guidance.h"
#include "diffusion/samplers.h"
#include "diffusion/schedule.h"
#include "diffusion/training.h"

namespace {

int checks = 0, failures = 0;

void report(bool ok, const std::string& what, const std::string& detail) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s: %s\n", what.c_str(), detail.c_str());
  }
}

class Fixtures {
 public:
  explicit Fixtures(const std::string& dir) {
    std::ifstream index(dir + "/index.json");
    if (!index) throw std::runtime_error("cannot open " + dir + "/index.json (run scripts/fixtures/diffusion_schedules.py)");
    const std::regex entry(R"re(^\s*"([^"]+)": \{"offset": (\d+), "shape": \[([0-9, ]*)\]\})re");
    std::string line;
    while (std::getline(index, line)) {
      std::smatch m;
      if (!std::regex_search(line, m, entry)) continue;
      std::vector<int64_t> shape;
      std::stringstream dims(m[3].str());
      std::string d;
      while (std::getline(dims, d, ',')) shape.push_back(std::stoll(d));
      entries_[m[1].str()] = {std::stoll(m[2].str()), shape};
    }
    std::ifstream bin(dir + "/diffusion.bin", std::ios::binary | std::ios::ate);
    if (!bin) throw std::runtime_error("cannot open " + dir + "/diffusion.bin");
    data_.resize(static_cast<size_t>(bin.tellg()) / sizeof(float));
    bin.seekg(0);
    bin.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_.size() * sizeof(float)));
  }

  at::Tensor operator()(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) throw std::runtime_error("no fixture named " + name);
    return at::from_blob(const_cast<float*>(data_.data()) + it->second.first, it->second.second, at::kFloat).clone();
  }
  at::Tensor longs(const std::string& name) const { return (*this)(name).round().to(at::kLong); }
  const std::map<std::string, std::pair<int64_t, std::vector<int64_t>>>& entries() const { return entries_; }

 private:
  std::map<std::string, std::pair<int64_t, std::vector<int64_t>>> entries_;
  std::vector<float> data_;
};

// |got - want| <= atol + rtol * |want| everywhere.
double worst = 0;  // largest abs error seen among the sampler runs
void close(const std::string& what, const at::Tensor& got, const at::Tensor& want, double atol, double rtol = 0) {
  if (!got.defined() || got.sizes() != want.sizes()) {
    std::ostringstream d;
    d << "shape " << (got.defined() ? got.sizes() : at::IntArrayRef{}) << ", expected " << want.sizes();
    report(false, what, d.str());
    return;
  }
  at::Tensor g = got.detach().to(at::kDouble), w = want.to(at::kDouble);
  at::Tensor excess = (g - w).abs() - (w.abs() * rtol + atol);
  const double err = (g - w).abs().max().item<double>();
  const bool ok = excess.max().item<double>() <= 0 && std::isfinite(err);
  std::ostringstream d;
  d << "max abs err " << err << " (atol " << atol << ", rtol " << rtol << ")";
  report(ok, what, d.str());
}

void throws(const std::string& what, const std::function<void()>& fn, const std::string& message) {
  try {
    fn();
    report(false, what, "did not throw; expected \"" + message + "\"");
  } catch (const std::exception& e) {
    report(e.what() == message, what, std::string("threw \"") + e.what() + "\"; expected \"" + message + "\"");
  }
}

const char* kToySource = R"JIT(
def forward(self, x, t):
    return torch.tanh(x) * 0.5 + t.view(-1, 1, 1, 1).float() * 0.01
)JIT";

const char* kToySelfCondSource = R"JIT(
def forward(self, x, t, x_self_cond):
    y = torch.tanh(x) * 0.5 + t.view(-1, 1, 1, 1).float() * 0.01
    return y + x_self_cond * 0.25
)JIT";

const char* kToyOptionalSelfCondSource = R"JIT(
def forward(self, x, t, x_self_cond: Optional[Tensor] = None):
    y = torch.tanh(x) * 0.5 + t.view(-1, 1, 1, 1).float() * 0.01
    if x_self_cond is None:
        return y
    return y + x_self_cond * 0.25
)JIT";

torch::jit::Module script(const std::string& name, const char* source,
                          const std::map<std::string, at::Tensor>& buffers = {}) {
  torch::jit::Module m(name);
  for (const auto& [k, v] : buffers) m.register_buffer(k, v);
  m.define(source);
  return m;
}

// The toy guidance of the fixtures: -0.3 x + 0.01 t.
struct ToyGuidance : gd::Guidance {
  int calls = 0;
  bool saw_grad_mode = false;
  at::Tensor gradient(const at::Tensor& x, const at::Tensor& t) override {
    ++calls;
    saw_grad_mode = saw_grad_mode || at::GradMode::is_enabled();
    return x * -0.3 + t.view({-1, 1, 1, 1}).to(at::kFloat) * 0.01;
  }
};

// A guidance returning whatever `fn` makes of (x, t, call number).
struct FnGuidance : gd::Guidance {
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, int)> fn;
  int calls = 0;
  at::Tensor gradient(const at::Tensor& x, const at::Tensor& t) override { return fn(x, t, calls++); }
};

gd::Schedule schedule_for(const std::string& name) {
  // "linear/25", "cosine_s0.02/20", "sigmoid_-2_4_0.7/20", ...
  const auto slash = name.find('/');
  const std::string kind = name.substr(0, slash);
  gd::ScheduleOptions o;
  o.timesteps = std::stoll(name.substr(slash + 1));
  if (kind == "cosine_s0.02") {
    o.beta_schedule = gd::BetaSchedule::Cosine;
    o.cosine_s = 0.02;
  } else if (kind == "sigmoid_-2_4_0.7") {
    o.beta_schedule = gd::BetaSchedule::Sigmoid;
    o.sigmoid_start = -2;
    o.sigmoid_end = 4;
    o.sigmoid_tau = 0.7;
  } else {
    o.beta_schedule = gd::parse_beta_schedule(kind);
  }
  return gd::make_schedule(o);
}

const std::map<std::string, at::Tensor gd::Schedule::*> kBuffers = {
    {"betas", &gd::Schedule::betas},
    {"alphas_cumprod", &gd::Schedule::alphas_cumprod},
    {"alphas_cumprod_prev", &gd::Schedule::alphas_cumprod_prev},
    {"sqrt_alphas_cumprod", &gd::Schedule::sqrt_alphas_cumprod},
    {"sqrt_one_minus_alphas_cumprod", &gd::Schedule::sqrt_one_minus_alphas_cumprod},
    {"log_one_minus_alphas_cumprod", &gd::Schedule::log_one_minus_alphas_cumprod},
    {"sqrt_recip_alphas_cumprod", &gd::Schedule::sqrt_recip_alphas_cumprod},
    {"sqrt_recipm1_alphas_cumprod", &gd::Schedule::sqrt_recipm1_alphas_cumprod},
    {"posterior_variance", &gd::Schedule::posterior_variance},
    {"posterior_log_variance_clipped", &gd::Schedule::posterior_log_variance_clipped},
    {"posterior_mean_coef1", &gd::Schedule::posterior_mean_coef1},
    {"posterior_mean_coef2", &gd::Schedule::posterior_mean_coef2},
    {"snr", &gd::Schedule::snr},
};

void test_schedules(const Fixtures& fx) {
  for (const auto& [name, entry] : fx.entries()) {
    if (name.rfind("schedule/", 0) != 0) continue;
    const auto last = name.rfind('/');
    const std::string sched = name.substr(9, last - 9), buffer = name.substr(last + 1);
    const gd::Schedule s = schedule_for(sched);
    // Same float64 kernels on both sides: expect equality up to a float32 ulp.
    close(name, s.*kBuffers.at(buffer), fx(name), 1e-12, 2.5e-7);
  }
  const gd::Schedule s = schedule_for("sigmoid/20");
  report(s.timesteps == 20 && s.betas.scalar_type() == at::kFloat && s.betas.size(0) == 20, "schedule shape", "");
}

void test_predict(const Fixtures& fx) {
  const gd::Schedule s = schedule_for("sigmoid/20");
  const at::Tensor x = fx("predict/x"), t = fx.longs("predict/t"), out = fx("predict/out");
  torch::jit::Module constant = script("Constant", "def forward(self, x, t):\n    return self.out\n", {{"out", out}});
  for (const char* objective : {"pred_noise", "pred_x0", "pred_v"}) {
    gd::Denoiser d(constant, gd::parse_objective(objective));
    for (bool clip : {true, false}) {
      const std::string base = std::string("predict/") + objective + (clip ? "/clip" : "/noclip");
      gd::Prediction p = d.predict(s, x, t, at::Tensor(), clip);
      close(base + "/eps", p.eps, fx(base + "/eps"), 1e-6, 1e-6);
      close(base + "/x0", p.x0, fx(base + "/x0"), 1e-6, 1e-6);
    }
  }
  gd::Denoiser d(constant, gd::Objective::PredNoise);
  gd::Prediction p = gd::condition_score(s, x, t, d.predict(s, x, t, at::Tensor(), true), fx("condition/gradient"));
  close("condition_score eps", p.eps, fx("condition/score_eps"), 1e-6, 1e-6);
  close("condition_score x0", p.x0, fx("condition/score_x0"), 1e-6, 1e-6);
  close("condition_mean", gd::condition_mean(x, at::full({2, 1, 1, 1}, 0.5), out), x + out * 0.5, 0);
}

void test_ddim_pairs(const Fixtures& fx) {
  for (auto [T, S] : std::vector<std::pair<int64_t, int64_t>>{{1000, 50}, {1000, 999}, {20, 4}, {20, 19}, {10, 3}, {7, 1}}) {
    std::vector<int64_t> flat;
    for (auto [a, b] : gd::ddim_time_pairs(T, S)) {
      flat.push_back(a);
      flat.push_back(b);
    }
    const std::string name = "ddim_pairs/" + std::to_string(T) + "/" + std::to_string(S);
    close(name, at::tensor(flat).view({-1, 2}).to(at::kFloat), fx(name), 0);
  }
}

struct Run {
  const char* name;
  bool ddim;
  uint64_t seed;
  gd::Objective objective;
  int64_t steps;  // DDIM sampling steps
  double eta;
  bool guided;
  gd::SampleOptions::CondInput cond_input;
  bool clip, self_cond, all, generator;
};

void test_runs(const Fixtures& fx) {
  using O = gd::Objective;
  const auto M = gd::SampleOptions::CondInput::Mean, X = gd::SampleOptions::CondInput::X;
  // Mirrors RUNS in scripts/fixtures/diffusion_schedules.py: ancestral at T = 5, DDIM at T = 20.
  const std::vector<Run> runs = {
      {"ancestral/pred_noise", false, 11, O::PredNoise, 5, 0, false, M, true, false, false, false},
      {"ancestral/pred_x0", false, 12, O::PredX0, 5, 0, false, M, true, false, false, false},
      {"ancestral/pred_v", false, 13, O::PredV, 5, 0, false, M, true, false, false, false},
      {"ancestral/pred_noise/guided", false, 14, O::PredNoise, 5, 0, true, M, true, false, false, false},
      {"ancestral/pred_v/guided_x", false, 15, O::PredV, 5, 0, true, X, true, false, false, false},
      {"ancestral/pred_noise/noclip", false, 16, O::PredNoise, 5, 0, false, M, false, false, false, false},
      {"ancestral/pred_x0/selfcond", false, 17, O::PredX0, 5, 0, false, M, true, true, false, false},
      {"ancestral/pred_noise/all", false, 18, O::PredNoise, 5, 0, true, M, true, false, true, false},
      {"ancestral/pred_noise/generator", false, 19, O::PredNoise, 5, 0, false, M, true, false, false, true},
      {"ddim/pred_noise/eta0", true, 21, O::PredNoise, 4, 0.0, false, M, true, false, false, false},
      {"ddim/pred_noise/eta0.5", true, 22, O::PredNoise, 4, 0.5, false, M, true, false, false, false},
      {"ddim/pred_x0/eta1", true, 23, O::PredX0, 5, 1.0, false, M, true, false, false, false},
      {"ddim/pred_v/guided", true, 24, O::PredV, 4, 0.5, true, M, true, false, false, false},
      {"ddim/pred_noise/guided", true, 25, O::PredNoise, 7, 0.0, true, M, true, false, false, false},
      {"ddim/pred_v/selfcond_all", true, 26, O::PredV, 3, 0.3, false, M, true, true, true, false},
      {"ddim/pred_noise/noclip_generator", true, 27, O::PredNoise, 4, 0.5, false, M, false, false, false, true},
  };
  gd::ScheduleOptions so;
  so.timesteps = 5;
  const gd::Schedule s5 = gd::make_schedule(so);
  so.timesteps = 20;
  const gd::Schedule s20 = gd::make_schedule(so);
  torch::jit::Module toy = script("Toy", kToySource);
  torch::jit::Module toy_sc = script("ToySelfCond", kToySelfCondSource);
  torch::jit::Module toy_osc = script("ToyOptionalSelfCond", kToyOptionalSelfCondSource);

  for (const Run& r : runs) {
    const at::Tensor want = fx(std::string("run/") + r.name);
    std::vector<torch::jit::Module> models{toy};
    if (r.self_cond) models = {toy_sc, toy_osc};  // Tensor and Optional[Tensor] third argument
    for (size_t i = 0; i < models.size(); ++i) {
      gd::Denoiser d(models[i], r.objective);
      report(d.self_condition() == r.self_cond, std::string(r.name) + " self_condition detected", "");
      ToyGuidance guidance;
      gd::SampleOptions o;
      o.shape = {2, 3, 4, 4};
      o.sampling_timesteps = r.ddim ? r.steps : 5;
      o.ddim_eta = r.eta;
      o.clip_denoised = r.clip;
      o.cond_input = r.cond_input;
      o.return_all_timesteps = r.all;
      int64_t steps = 0;
      o.on_step = [&](int64_t step, int64_t total, int64_t) {
        if (step != steps || total != (r.ddim ? r.steps : 5)) report(false, r.name, "on_step out of order");
        ++steps;
      };
      if (r.generator) {
        at::manual_seed(r.seed + 1000);
        o.generator = at::make_generator<at::CPUGeneratorImpl>(r.seed);
      } else {
        at::manual_seed(r.seed);
      }
      const at::Tensor got = gd::sample(d, r.ddim ? s20 : s5, r.guided ? &guidance : nullptr, o);
      const std::string what = std::string("run/") + r.name + (i ? " (Optional x_self_cond)" : "");
      close(what, got, want, 1e-5, 1e-5);
      worst = std::max(worst, (got - want).abs().max().item<double>());
      report(steps == o.sampling_timesteps, what + " on_step count", std::to_string(steps));
      report(!r.guided || guidance.calls == o.sampling_timesteps, what + " guidance calls", std::to_string(guidance.calls));
      report(!guidance.saw_grad_mode, what + " guidance called with grad mode off", "");
      report(!got.requires_grad() && at::GradMode::is_enabled(), what + " grad mode restored", "");
    }
  }
  // A 3-argument model that says it does not self-condition.
  torch::jit::Module flagged = script("Flagged", kToySelfCondSource);
  flagged.register_attribute("self_condition", c10::BoolType::get(), false);
  report(!gd::Denoiser(flagged, gd::Objective::PredNoise).self_condition(), "self_condition attribute honoured", "");
  report(gd::Denoiser(flagged, gd::Objective::PredNoise, true).self_condition(), "self_condition override", "");
}

void test_losses(const Fixtures& fx) {
  const gd::Schedule s = schedule_for("sigmoid/20");
  const at::Tensor x0 = fx("loss/x0"), noise = fx("loss/noise"), t = fx.longs("loss/t");
  close("q_sample", gd::q_sample(s, x0, t, noise), fx("loss/q_sample"), 1e-6, 1e-6);
  torch::jit::Module toy = script("Toy", kToySource);
  for (const char* objective : {"pred_noise", "pred_x0", "pred_v"}) {
    gd::Denoiser d(toy, gd::parse_objective(objective));
    for (bool min_snr : {false, true}) {
      const std::string tag = std::string(objective) + (min_snr ? "/minsnr" : "/plain");
      gd::LossOptions lo;
      lo.min_snr_loss_weight = min_snr;
      close("loss/weight/" + tag, gd::loss_weight(s, d.objective(), lo), fx("loss/weight/" + tag), 0, 5e-7);
      close("loss/p_losses/" + tag, gd::p_losses(d, s, x0, t, noise, lo), fx("loss/p_losses/" + tag), 0, 2e-6);
    }
  }
  gd::LossOptions lo;
  lo.self_condition = true;
  gd::Denoiser sc(script("ToySelfCond", kToySelfCondSource), gd::Objective::PredX0);
  close("loss/p_losses/pred_x0/plain/selfcond", gd::p_losses(sc, s, x0, t, noise, lo),
        fx("loss/p_losses/pred_x0/plain/selfcond"), 0, 2e-6);

  // The loss keeps the graph: a model with a parameter gets a gradient.
  torch::jit::Module param("Param");
  param.register_parameter("scale", at::full({1}, 0.7).requires_grad_(true), false);
  param.define("def forward(self, x, t):\n    return torch.tanh(x) * self.scale\n");
  at::Tensor loss = gd::p_losses(gd::Denoiser(param, gd::Objective::PredNoise), s, x0, t, noise);
  loss.backward();
  at::Tensor grad = param.attr("scale").toTensor().grad();
  report(grad.defined() && at::isfinite(grad).all().item<bool>() && grad.abs().item<double>() > 0,
         "p_losses backpropagates into model parameters", "");

  torch::jit::Module classifier = script("ToyClassifier",
      "def forward(self, x, t):\n    return x.flatten(1).matmul(self.w) + t.float().unsqueeze(1) * self.b\n",
      {{"w", fx("classifier/w")}, {"b", fx("classifier/b")}});
  const at::Tensor y = fx.longs("classifier/y");
  close("classifier_loss", gd::classifier_loss(classifier, s, x0, t, y, noise), fx("classifier/loss"), 0, 2e-6);
  gd::ClassifierGuidance cg(classifier, y, 1.7);
  at::NoGradGuard no_grad;
  close("ClassifierGuidance on a toy classifier", cg.gradient(fx("predict/x"), fx.longs("predict/t")),
        fx("classifier/gradient"), 1e-6, 1e-6);
}

void test_errors() {
  throws("parse_beta_schedule", [] { gd::parse_beta_schedule("foo"); },
         "betaSchedule must be one of linear, cosine, sigmoid; got 'foo'");
  throws("parse_objective", [] { gd::parse_objective("eps"); },
         "objective must be one of pred_noise, pred_x0, pred_v; got 'eps'");
  throws("parse_cond_input", [] { gd::parse_cond_input("xt"); }, "condInput must be one of mean, x; got 'xt'");
  throws("timesteps 0", [] {
    gd::ScheduleOptions o;
    o.timesteps = 0;
    gd::make_schedule(o);
  }, "timesteps must be a positive integer; got 0");
  throws("timesteps above the bound", [] {
    gd::ScheduleOptions o;
    o.timesteps = 100001;
    gd::make_schedule(o);
  }, "timesteps must be at most 100000; got 100001");
  throws("min-SNR gamma 0", [] {
    gd::ScheduleOptions o;
    o.timesteps = 10;
    gd::LossOptions lo;
    lo.min_snr_loss_weight = true;
    lo.min_snr_gamma = 0;  // every weight 0: a loss of 0 that trains nothing
    gd::loss_weight(gd::make_schedule(o), gd::Objective::PredNoise, lo);
  }, "minSnrGamma must be a positive finite number; got 0");
  throws("linear at T = 19", [] {
    gd::ScheduleOptions o;
    o.timesteps = 19;
    o.beta_schedule = gd::BetaSchedule::Linear;
    gd::make_schedule(o);
  }, "betaSchedule 'linear' needs timesteps >= 20 (its last beta is 20 / timesteps, which must not exceed 1); got timesteps 19");
  throws("model arity", [] {
    gd::Denoiser(script("One", "def forward(self, x):\n    return x\n"), gd::Objective::PredNoise);
  }, "the diffusion model's forward must take (x, t) or (x, t, x_self_cond); it takes 1 argument");

  gd::ScheduleOptions so;
  so.timesteps = 20;
  const gd::Schedule s = gd::make_schedule(so);
  gd::Denoiser toy(script("Toy", kToySource), gd::Objective::PredNoise);
  gd::SampleOptions o;
  o.shape = {2, 3, 16, 16};
  o.sampling_timesteps = 20;

  FnGuidance small;
  small.fn = [](const at::Tensor& x, const at::Tensor&, int call) {
    return call == 3 ? at::zeros({2, 3, 8, 8}) : at::zeros_like(x);
  };
  throws("guidance shape", [&] { gd::sample(toy, s, &small, o); },
         "condFn at step 3 (t=16) returned a tensor of shape [2, 3, 8, 8]; expected [2, 3, 16, 16]");
  FnGuidance nan;
  nan.fn = [](const at::Tensor& x, const at::Tensor&, int call) {
    at::Tensor g = at::zeros_like(x);
    if (call == 3) g[1][2][5][7] = NAN;
    return g;
  };
  throws("guidance NaN", [&] { gd::sample(toy, s, &nan, o); }, "condFn at step 3 (t=16) returned NaN or Inf");
  FnGuidance inf_ddim;
  inf_ddim.fn = [](const at::Tensor& x, const at::Tensor&, int call) {
    return call == 1 ? at::full_like(x, INFINITY) : at::zeros_like(x);
  };
  gd::SampleOptions od = o;
  od.sampling_timesteps = 4;  // pairs (19, 14), (14, 9), ...
  throws("guidance Inf in DDIM", [&] { gd::sample(toy, s, &inf_ddim, od); }, "condFn at step 1 (t=14) returned NaN or Inf");
  FnGuidance none;
  none.fn = [](const at::Tensor&, const at::Tensor&, int) { return at::Tensor(); };
  throws("guidance undefined", [&] { gd::sample(toy, s, &none, o); }, "condFn at step 0 (t=19) returned no tensor");
  FnGuidance thrower;
  thrower.fn = [](const at::Tensor& x, const at::Tensor&, int call) -> at::Tensor {
    if (call == 2) throw std::runtime_error("boom from condFn");
    return at::zeros_like(x);
  };
  throws("guidance exception propagates", [&] { gd::sample(toy, s, &thrower, o); }, "boom from condFn");
  report(at::GradMode::is_enabled(), "grad mode restored after a throw", "");

  gd::SampleOptions oc = o;
  oc.on_step = [](int64_t step, int64_t, int64_t) {
    if (step == 4) throw std::runtime_error("cancelled");
  };
  throws("on_step exception propagates", [&] { gd::sample(toy, s, nullptr, oc); }, "cancelled");
  gd::SampleOptions bad = o;
  bad.sampling_timesteps = 21;
  throws("samplingTimesteps too large", [&] { gd::sample(toy, s, nullptr, bad); },
         "samplingTimesteps must be an integer from 1 to timesteps (20); got 21");
  bad = o;
  bad.shape = {2, 0, 4};
  throws("bad shape", [&] { gd::sample(toy, s, nullptr, bad); },
         "shape must be a non-empty list of positive sizes; got [2, 0, 4]");
  bad = o;
  bad.sampling_timesteps = 5;
  bad.ddim_eta = -1;
  throws("negative eta", [&] { gd::sample(toy, s, nullptr, bad); }, "ddimSamplingEta must be in [0, 1]; got -1");
  bad.ddim_eta = 1.01;  // NaN images, unchecked
  throws("eta above 1", [&] { gd::sample(toy, s, nullptr, bad); }, "ddimSamplingEta must be in [0, 1]; got 1.01");

  gd::Denoiser wrong(script("Wrong", "def forward(self, x, t):\n    return x[:, :1]\n"), gd::Objective::PredNoise);
  throws("model output shape", [&] { gd::sample(wrong, s, nullptr, o); },
         "the diffusion model returned a tensor of shape [2, 1, 16, 16]; expected [2, 3, 16, 16] (the shape of its input)");
  gd::ClassifierGuidance short_y(script("C", "def forward(self, x, t):\n    return x.flatten(1)[:, :5]\n"),
                                 at::tensor(std::vector<int64_t>{1}), 1.0);
  throws("classifier y length", [&] { gd::sample(toy, s, &short_y, o); }, "classifier guidance has 1 label in y for a batch of 2");
  throws("classifier float y", [&] { gd::ClassifierGuidance(script("C2", "def forward(self, x, t):\n    return x\n"), at::ones({2}), 1.0); },
         "classifier guidance labels y must be integers; got Float");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string root = argc > 1 ? argv[1] : ".";
  try {
    at::set_num_threads(1);
    const Fixtures fx(root + "/test/fixtures/diffusion");
    test_schedules(fx);
    test_predict(fx);
    test_ddim_pairs(fx);
    test_runs(fx);
    test_losses(fx);
    test_errors();
  } catch (const std::exception& e) {
    std::printf("FAIL exception: %s\n", e.what());
    return 1;
  }
  std::printf("sampler runs vs fixtures: max abs err %.3e\n", worst);
  std::printf("%d of %d checks passed\n", checks - failures, checks);
  return failures ? 1 : 0;
}
