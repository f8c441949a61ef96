// Images out: a batch of images becomes one uint8 grid, as torchvision's make_grid and
// save_image do, ready for a PNG encoder in JS.
#include "js/common.h"
#include "js/tensor_wrap.h"

#include <algorithm>
#include <cmath>

namespace gd::js {

namespace {

// imageGrid(images [B,C,H,W] or [C,H,W] in [0,1], nrow, padding, padValue) -> uint8 [H', W', C]
// with C 1 (grey) or 3 (RGB): rows of nrow images, `padding` pixels of padValue around each.
Napi::Value ImageGrid(const Napi::CallbackInfo& info) {
  GD_GUARD(info.Env(), {
    Napi::Env env = info.Env();
    at::Tensor x = TensorWrap::From(info[0], "images").detach().to(at::kCPU, at::kFloat);
    if (x.dim() == 3) x = x.unsqueeze(0);
    if (x.dim() != 4) ThrowRange(env, "saveImage expects images shaped [B, C, H, W] or [C, H, W]; got " + std::to_string(x.dim()) + "-D");
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    if (c != 1 && c != 3) ThrowRange(env, "saveImage expects 1 or 3 channels; got " + std::to_string(c));
    if (b == 0 || h == 0 || w == 0) ThrowRange(env, "saveImage got an empty batch");
    const int64_t nrow_asked = ToInt(info[1], "nrow");
    if (nrow_asked < 1) ThrowRange(env, "Expected positive integer for nrow but received " + Describe(info[1]));
    const int64_t nrow = std::min<int64_t>(nrow_asked, b);  // more per row than images: one row, as torchvision
    const int64_t pad = ToNonNegativeInt(info[2], "padding");
    const double pad_value = ToNumber(info[3], "padValue");
    if (std::isnan(pad_value)) ThrowRange(env, "Expected a number for padValue but received NaN");
    // NaN would become black pixels through the clamp: a diverged sample must not look like an image.
    const int64_t nans = x.isnan().sum().item<int64_t>();
    if (nans > 0) {
      ThrowRange(env, "saveImage: the images hold " + std::to_string(nans) + " NaN values (of " + std::to_string(x.numel()) +
                          "); nothing was written");
    }
    const int64_t rows = (b + nrow - 1) / nrow;
    at::Tensor grid = at::full({c, rows * (h + pad) + pad, nrow * (w + pad) + pad}, pad_value, x.options());
    for (int64_t i = 0; i < b; i++) {
      const int64_t r = i / nrow, col = i % nrow;
      grid.narrow(1, r * (h + pad) + pad, h).narrow(2, col * (w + pad) + pad, w).copy_(x[i]);
    }
    // torchvision: mul(255).add_(0.5).clamp_(0, 255) then truncate to uint8.
    at::Tensor bytes = grid.mul(255).add_(0.5).clamp_(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
    return TensorWrap::Wrap(env, bytes);
  })
}

}  // namespace

void InstallImage(Napi::Env env, Napi::Object exports) {
  exports.Set("imageGrid", Napi::Function::New(env, ImageGrid, "imageGrid"));
}

}  // namespace gd::js
