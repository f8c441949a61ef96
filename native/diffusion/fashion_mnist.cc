#include "diffusion/fashion_mnist.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

namespace gd {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr int64_t kNumClasses = 10;
constexpr int64_t kMaxSide = 4096;
constexpr size_t kChunk = size_t{1} << 20;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// One gzip (or plain: zlib reads those transparently) file, read exactly or not at all.
class GzFile {
 public:
  explicit GzFile(std::string path) : path_(std::move(path)) {
    errno = 0;
    file_ = gzopen(path_.c_str(), "rb");
    if (!file_) {
      throw std::runtime_error("cannot open Fashion-MNIST file " + path_ + ": " +
                               (errno ? std::strerror(errno) : "out of memory"));
    }
    gzbuffer(file_, 1 << 17);
  }
  ~GzFile() { gzclose(file_); }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  [[noreturn]] void corrupt(const std::string& why) const {
    throw std::runtime_error("Fashion-MNIST file " + path_ + " is corrupt: " + why);
  }

  // Up to n bytes into dst; returns how many came (fewer only at the end of the data).
  size_t read_some(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min(n - done, kChunk));
      const int got = gzread(file_, dst + done, want);
      if (got < 0) {
        int errnum = 0;
        const char* msg = gzerror(file_, &errnum);
        corrupt(std::string("cannot decompress (") + (msg ? msg : "zlib error") + ")");
      }
      if (got == 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  uint32_t read_u32(const char* what) {
    uint8_t b[4];
    if (read_some(b, 4) != 4) corrupt(std::string("truncated header (") + what + ")");
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
  }

  // Exactly `bytes` bytes into a new buffer, grown as data actually arrives, so that a header
  // claiming a huge count costs no more memory than the file really holds.
  std::vector<uint8_t> read_exact(size_t bytes, const std::string& what) {
    std::vector<uint8_t> out;
    while (out.size() < bytes) {
      const size_t old = out.size();
      const size_t want = std::min(bytes - old, 16 * kChunk);
      out.resize(old + want);
      const size_t got = read_some(out.data() + old, want);
      out.resize(old + got);
      if (got < want) {
        std::ostringstream msg;
        msg << "truncated: its header announces " << what << " (" << bytes << " bytes) but only "
            << out.size() << " bytes follow";
        corrupt(msg.str());
      }
    }
    return out;
  }

  void expect_end(int64_t items) {
    uint8_t b;
    if (read_some(&b, 1) != 0) {
      corrupt("more data follows the " + std::to_string(items) + " items its header announces");
    }
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

// DIR/BASE.gz, else DIR/BASE (uncompressed); throws the install hint when neither exists.
std::string find_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const std::string& name : {base + ".gz", base}) {
    const fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  throw std::runtime_error("Fashion-MNIST not found in " + dir + " (missing " + base +
                           ".gz); install it with: apt-get install dataset-fashion-mnist");
}

}  // namespace

Dataset load_fashion_mnist(const std::string& dir_arg, bool train, int64_t limit) {
  const std::string dir = dir_arg.empty() ? std::string(kFashionMnistDir) : dir_arg;
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");

  GzFile images_file(images_path);
  const uint32_t images_magic = images_file.read_u32("magic number");
  if (images_magic != kImagesMagic) {
    images_file.corrupt("magic number " + hex32(images_magic) + ", expected " + hex32(kImagesMagic) +
                        " (IDX, unsigned bytes, 3 dimensions)");
  }
  const int64_t n = images_file.read_u32("image count");
  const int64_t rows = images_file.read_u32("rows");
  const int64_t cols = images_file.read_u32("columns");
  if (rows < 1 || rows > kMaxSide || cols < 1 || cols > kMaxSide) {
    images_file.corrupt("image size " + std::to_string(rows) + "x" + std::to_string(cols) +
                        " is out of range");
  }

  GzFile labels_file(labels_path);
  const uint32_t labels_magic = labels_file.read_u32("magic number");
  if (labels_magic != kLabelsMagic) {
    labels_file.corrupt("magic number " + hex32(labels_magic) + ", expected " + hex32(kLabelsMagic) +
                        " (IDX, unsigned bytes, 1 dimension)");
  }
  const int64_t n_labels = labels_file.read_u32("label count");
  if (n_labels != n) {
    labels_file.corrupt("it has " + std::to_string(n_labels) + " labels but " + images_path + " has " +
                        std::to_string(n) + " images");
  }

  const int64_t count = limit < 0 ? n : std::min(limit, n);
  const int64_t pixels = rows * cols;
  std::vector<uint8_t> pixel_bytes = images_file.read_exact(
      static_cast<size_t>(count * pixels), std::to_string(count) + " images of " + std::to_string(rows) +
                                               "x" + std::to_string(cols));
  std::vector<uint8_t> label_bytes =
      labels_file.read_exact(static_cast<size_t>(count), std::to_string(count) + " labels");
  if (count == n) {
    images_file.expect_end(n);
    labels_file.expect_end(n);
  }
  for (int64_t i = 0; i < count; ++i) {
    if (label_bytes[static_cast<size_t>(i)] >= kNumClasses) {
      labels_file.corrupt("label " + std::to_string(label_bytes[static_cast<size_t>(i)]) + " of item " +
                          std::to_string(i) + " is not a class index 0..9");
    }
  }

  Dataset out;
  out.images = at::empty({count, 1, rows, cols}, at::kByte);
  if (count > 0) std::memcpy(out.images.data_ptr<uint8_t>(), pixel_bytes.data(), pixel_bytes.size());
  out.labels = at::from_blob(label_bytes.data(), {count}, at::kByte).to(at::kLong);
  return out;
}

std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

at::Tensor normalize_images(const at::Tensor& images, int64_t pad_to) {
  if (!images.defined() || (images.dim() != 3 && images.dim() != 4)) {
    throw std::invalid_argument("normalize_images: images must be [N, H, W] or [N, C, H, W]");
  }
  at::Tensor x = images.dim() == 3 ? images.unsqueeze(1) : images;
  if (x.scalar_type() == at::kByte) {
    x = x.to(at::kFloat).div_(255);
  } else if (at::isFloatingType(x.scalar_type())) {
    x = x.to(at::kFloat);
  } else {
    throw std::invalid_argument(std::string("normalize_images: images must be uint8 or floating; got ") +
                                c10::toString(x.scalar_type()));
  }
  x = x * 2 - 1;
  if (pad_to > 0) {
    const int64_t h = x.size(2), w = x.size(3);
    if (pad_to < h || pad_to < w) {
      throw std::invalid_argument("normalize_images: pad_to " + std::to_string(pad_to) +
                                  " is smaller than the images (" + std::to_string(h) + "x" +
                                  std::to_string(w) + ")");
    }
    const int64_t top = (pad_to - h) / 2, left = (pad_to - w) / 2;
    x = at::constant_pad_nd(x, {left, pad_to - w - left, top, pad_to - h - top}, -1.0);
  }
  return x;
}

}  // namespace gd
