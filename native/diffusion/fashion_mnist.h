// Fashion-MNIST (Xiao et al. 2017) from the gzipped IDX files of Debian's package
// dataset-fashion-mnist, for native training runs and tests.
//
// Files read from `dir`: {train,t10k}-images-idx3-ubyte.gz and {train,t10k}-labels-idx1-ubyte.gz
// (an uncompressed file of the same name without ".gz" is used when the .gz is absent).
// Every header is checked (magic number, sizes, matching counts) and every byte count: a
// corrupt or truncated file throws std::runtime_error naming the file, never crashes.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gd {

// Where dataset-fashion-mnist installs the files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct Dataset {
  at::Tensor images;  // uint8 [N, 1, 28, 28], 0 = background (as stored)
  at::Tensor labels;  // int64 [N], class indices 0..9 (see fashion_mnist_class_names)
};

// The training set (60000 images) or the test set (10000, the t10k files); the first `limit`
// items only when limit >= 0 (fewer when the set has fewer; only those bytes are inflated).
// An empty dir means kFashionMnistDir.
// Throws std::runtime_error:
//   "Fashion-MNIST not found in DIR (missing train-images-idx3-ubyte.gz); install it with:
//    apt-get install dataset-fashion-mnist"
// or "Fashion-MNIST file DIR/FILE is corrupt: ..." for a bad magic number, bad sizes,
// truncated or undecompressable data, trailing bytes, a label outside 0..9, or image and
// label files of different lengths.
Dataset load_fashion_mnist(const std::string& dir, bool train, int64_t limit = -1);

// The 10 class names, by label: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt,
// Sneaker, Bag, Ankle boot.
std::vector<std::string> fashion_mnist_class_names();

// Images as model input: float32 in [-1, 1] (uint8: x / 255 * 2 - 1; a floating tensor is
// taken to be in [0, 1] already), shape [N, C, H, W] (a [N, H, W] batch gets C = 1). With
// pad_to > 0 the images are padded on every side with -1 (black, the background) to
// pad_to x pad_to, centred (28 -> 32 adds 2 pixels per side); pad_to smaller than the images
// throws std::invalid_argument.
at::Tensor normalize_images(const at::Tensor& images, int64_t pad_to = 0);

}  // namespace gd
