// The Fashion-MNIST loader (native/diffusion/fashion_mnist.h) against Debian's
// dataset-fashion-mnist files, and its errors on missing, corrupt and truncated files.
//
//   training_fashion_mnist_test [dataset_dir]
// dataset_dir defaults to $GD_FASHION_MNIST or /usr/share/datasets/fashion-mnist. The
// expected sums were computed with Python's gzip module, independently of this loader.
// Exit status 0 when every check holds.
#include <ATen/ATen.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "diffusion/fashion_mnist.h"

namespace fs = std::filesystem;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::cout << (ok ? "ok   " : "FAIL ") << what << "\n";
  if (!ok) ++failures;
}

// fn must throw an exception of type E whose message contains every one of `parts`.
template <typename E>
void expect_error(const std::string& what, const std::function<void()>& fn,
                  const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const E& e) {
    const std::string msg = e.what();
    bool ok = true;
    for (const auto& p : parts) ok = ok && msg.find(p) != std::string::npos;
    check(ok, what);
    if (!ok) std::cout << "     got: " << msg << "\n";
    return;
  } catch (const std::exception& e) {
    check(false, what);
    std::cout << "     wrong exception type: " << e.what() << "\n";
    return;
  }
  check(false, what + " (no exception)");
}

void put_u32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t pixels_present) {
  std::string s;
  put_u32(s, magic);
  put_u32(s, n);
  put_u32(s, rows);
  put_u32(s, cols);
  for (size_t i = 0; i < pixels_present; ++i) s.push_back(static_cast<char>(i % 251));
  return s;
}

std::string idx_labels(uint32_t magic, uint32_t n, const std::vector<uint8_t>& labels) {
  std::string s;
  put_u32(s, magic);
  put_u32(s, n);
  for (uint8_t l : labels) s.push_back(static_cast<char>(l));
  return s;
}

void write_gz(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path.string());
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

void write_raw(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_raw(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scratch directory holding a t10k pair made of the given bytes (gzipped unless raw).
fs::path scratch_pair(const fs::path& root, const std::string& name, const std::string& images,
                      const std::string& labels, bool gzip = true) {
  fs::path dir = root / name;
  fs::create_directories(dir);
  auto write = gzip ? write_gz : write_raw;
  write(dir / "t10k-images-idx3-ubyte.gz", images);
  write(dir / "t10k-labels-idx1-ubyte.gz", labels);
  return dir;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = gd::kFashionMnistDir;
  if (const char* env = std::getenv("GD_FASHION_MNIST")) dir = env;
  if (argc > 1) dir = argv[1];
  const auto start = std::chrono::steady_clock::now();

  // ---- the real files ----
  {
    gd::Dataset d = gd::load_fashion_mnist(dir, /*train=*/true, 256);
    check(d.images.sizes() == at::IntArrayRef({256, 1, 28, 28}) && d.images.scalar_type() == at::kByte,
          "train[:256] images: uint8 [256, 1, 28, 28]");
    check(d.labels.sizes() == at::IntArrayRef({256}) && d.labels.scalar_type() == at::kLong,
          "train[:256] labels: int64 [256]");
    check(d.images[0].sum().item<int64_t>() == 76247, "train image 0 pixel sum 76247 (Python gzip)");
    check(d.images.sum().item<int64_t>() == 14846296, "train[:256] pixel sum 14846296 (Python gzip)");
    check(d.labels.sum().item<int64_t>() == 1104, "train[:256] label sum 1104 (Python gzip)");
    std::vector<int64_t> first(d.labels.data_ptr<int64_t>(), d.labels.data_ptr<int64_t>() + 10);
    check(first == std::vector<int64_t>({9, 0, 0, 3, 0, 2, 7, 2, 5, 5}), "train labels 0..9: 9 0 0 3 0 2 7 2 5 5");
  }
  {
    const auto t0 = std::chrono::steady_clock::now();
    gd::Dataset train = gd::load_fashion_mnist(dir, true);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    check(train.images.size(0) == 60000 && train.labels.size(0) == 60000, "full training set: 60000 items");
    std::printf("     (60000 images in %.2f s)\n", secs);
    at::Tensor counts = at::bincount(train.labels);
    check(counts.size(0) == 10 && counts.eq(6000).all().item<bool>(), "6000 training images per class");

    gd::Dataset test = gd::load_fashion_mnist(dir, false);
    check(test.images.size(0) == 10000, "test set: 10000 items");
    check(test.images[0].sum().item<int64_t>() == 33456 && test.images.slice(0, 0, 256).sum().item<int64_t>() == 14981551,
          "test pixel sums 33456 / 14981551 (Python gzip)");
    check(test.labels.slice(0, 0, 256).sum().item<int64_t>() == 1094 && test.labels[4].item<int64_t>() == 6,
          "test label sum 1094, label 4 == 6 (Python gzip)");
    check(gd::load_fashion_mnist(dir, false, 100000).images.size(0) == 10000, "limit above the size gives all");
    check(gd::load_fashion_mnist(dir, false, 0).images.sizes() == at::IntArrayRef({0, 1, 28, 28}),
          "limit 0 gives an empty set");
    check(gd::load_fashion_mnist("", false, 3).images.size(0) == 3 || dir != gd::kFashionMnistDir,
          "empty dir means the Debian location");
  }
  const auto names = gd::fashion_mnist_class_names();
  check(names.size() == 10 && names[0] == "T-shirt/top" && names[9] == "Ankle boot" && names[7] == "Sneaker",
        "class names");

  // ---- normalize_images ----
  {
    at::Tensor u8 = at::tensor({0, 255, 51}, at::kByte).reshape({1, 1, 1, 3});
    at::Tensor x = gd::normalize_images(u8);
    check(x.scalar_type() == at::kFloat && at::allclose(x.flatten(), at::tensor({-1.0f, 1.0f, -0.6f})),
          "normalize_images: 0 -> -1, 255 -> 1, 51 -> -0.6");
    at::Tensor imgs = gd::load_fashion_mnist(dir, false, 4).images;
    at::Tensor p = gd::normalize_images(imgs, 32);
    check(p.sizes() == at::IntArrayRef({4, 1, 32, 32}), "pad 28 -> 32");
    check(p.slice(2, 0, 2).eq(-1).all().item<bool>() && p.slice(3, 30, 32).eq(-1).all().item<bool>(),
          "padding is -1");
    check(at::equal(p.slice(2, 2, 30).slice(3, 2, 30), gd::normalize_images(imgs)), "image centred in the pad");
    check(gd::normalize_images(imgs.squeeze(1).to(at::kFloat) / 255).sizes() == at::IntArrayRef({4, 1, 28, 28}),
          "float [N, H, W] in [0, 1] gets a channel dim");
    expect_error<std::invalid_argument>("pad_to smaller than the images", [&] { gd::normalize_images(imgs, 20); },
                                        {"pad_to 20", "28x28"});
  }

  // ---- errors ----
  const fs::path root = fs::temp_directory_path() / ("gd_fmnist_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);

  expect_error<std::runtime_error>("missing dataset",
      [&] { gd::load_fashion_mnist((root / "nowhere").string(), true); },
      {"Fashion-MNIST not found in " + (root / "nowhere").string() +
       " (missing train-images-idx3-ubyte.gz); install it with: apt-get install dataset-fashion-mnist"});
  {
    fs::path half = root / "half";
    fs::create_directories(half);
    fs::copy_file(fs::path(dir) / "t10k-images-idx3-ubyte.gz", half / "t10k-images-idx3-ubyte.gz");
    expect_error<std::runtime_error>("missing labels file", [&] { gd::load_fashion_mnist(half.string(), false); },
                                     {"missing t10k-labels-idx1-ubyte.gz", "apt-get install dataset-fashion-mnist"});
  }
  {
    // Uncompressed files named without .gz are read too.
    fs::path raw = root / "raw";
    fs::create_directories(raw);
    write_raw(raw / "t10k-images-idx3-ubyte", idx_images(0x803, 2, 3, 4, 24));
    write_raw(raw / "t10k-labels-idx1-ubyte", idx_labels(0x801, 2, {3, 7}));
    gd::Dataset d = gd::load_fashion_mnist(raw.string(), false);
    check(d.images.sizes() == at::IntArrayRef({2, 1, 3, 4}) && d.labels[1].item<int64_t>() == 7 &&
              d.images[1][0][2][3].item<int64_t>() == 23,
          "uncompressed IDX files without .gz");
  }
  const std::string good_labels = idx_labels(0x801, 2, {1, 2});
  expect_error<std::runtime_error>("bad image magic",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "magic", idx_images(0x802, 2, 3, 4, 24), good_labels).string(), false); },
      {"is corrupt", "t10k-images-idx3-ubyte.gz", "magic number 0x00000802, expected 0x00000803"});
  expect_error<std::runtime_error>("bad label magic",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "lmagic", idx_images(0x803, 2, 3, 4, 24), idx_labels(0x803, 2, {1, 2})).string(), false); },
      {"t10k-labels-idx1-ubyte.gz is corrupt", "expected 0x00000801"});
  expect_error<std::runtime_error>("count mismatch",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "count", idx_images(0x803, 3, 3, 4, 36), good_labels).string(), false); },
      {"is corrupt", "2 labels", "3 images"});
  expect_error<std::runtime_error>("truncated pixels",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "short", idx_images(0x803, 2, 3, 4, 20), good_labels).string(), false); },
      {"t10k-images-idx3-ubyte.gz is corrupt", "truncated", "24 bytes", "only 20"});
  expect_error<std::runtime_error>("trailing bytes",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "long", idx_images(0x803, 2, 3, 4, 25), good_labels).string(), false); },
      {"is corrupt", "more data follows the 2 items"});
  expect_error<std::runtime_error>("label out of range",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "label", idx_images(0x803, 2, 3, 4, 24), idx_labels(0x801, 2, {1, 10})).string(), false); },
      {"t10k-labels-idx1-ubyte.gz is corrupt", "label 10 of item 1"});
  expect_error<std::runtime_error>("zero image size",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "size", idx_images(0x803, 2, 0, 4, 0), good_labels).string(), false); },
      {"is corrupt", "image size 0x4"});
  expect_error<std::runtime_error>("header shorter than 16 bytes",
      [&] { gd::load_fashion_mnist(scratch_pair(root, "header", std::string("\0\0\x08\x03\0\0", 6), good_labels).string(), false); },
      {"is corrupt", "truncated header"});
  {
    // A huge announced count must fail on the missing data, not allocate it.
    expect_error<std::runtime_error>("header announcing 4e9 images",
        [&] { gd::load_fashion_mnist(scratch_pair(root, "huge", idx_images(0x803, 0xffffffffu, 4096, 4096, 100),
                                                  idx_labels(0x801, 0xffffffffu, {1})).string(), false); },
        {"truncated"});
  }
  {
    // The real gzip stream cut short, and damaged in the middle of its deflate data.
    const std::string gz = read_raw(fs::path(dir) / "t10k-images-idx3-ubyte.gz");
    const std::string labels_gz = read_raw(fs::path(dir) / "t10k-labels-idx1-ubyte.gz");
    fs::path cut = root / "cut";
    fs::create_directories(cut);
    write_raw(cut / "t10k-images-idx3-ubyte.gz", gz.substr(0, gz.size() / 2));
    write_raw(cut / "t10k-labels-idx1-ubyte.gz", labels_gz);
    expect_error<std::runtime_error>("gzip file cut in half", [&] { gd::load_fashion_mnist(cut.string(), false); },
                                     {"t10k-images-idx3-ubyte.gz is corrupt"});
    check(gd::load_fashion_mnist(cut.string(), false, 100).images.size(0) == 100,
          "a cut file still serves a limit within its intact part");

    fs::path bad = root / "bad";
    fs::create_directories(bad);
    std::string damaged = gz;
    for (size_t i = gz.size() / 3; i < gz.size() / 3 + 64; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    write_raw(bad / "t10k-images-idx3-ubyte.gz", damaged);
    write_raw(bad / "t10k-labels-idx1-ubyte.gz", labels_gz);
    expect_error<std::runtime_error>("damaged deflate data", [&] { gd::load_fashion_mnist(bad.string(), false); },
                                     {"t10k-images-idx3-ubyte.gz is corrupt"});
    fs::path garbage = root / "garbage";
    fs::create_directories(garbage);
    write_raw(garbage / "t10k-images-idx3-ubyte.gz", "\x1f\x8b\x08\x00garbage that is not deflate data at all");
    write_raw(garbage / "t10k-labels-idx1-ubyte.gz", labels_gz);
    expect_error<std::runtime_error>("gzip header then garbage", [&] { gd::load_fashion_mnist(garbage.string(), false); },
                                     {"t10k-images-idx3-ubyte.gz is corrupt"});
  }
  fs::remove_all(root);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s (%.1f s)\n", failures ? "FAILED" : "all checks passed", secs);
  return failures ? 1 : 0;
}
