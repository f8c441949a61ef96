#include "checkpoints/file_check.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace gd::checkpoints {

namespace {

const char* KindOf(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

}  // namespace

std::string FileProblem(const std::string& path, uint64_t* size) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {  // stat follows symlinks
    const int err = errno;
    if (err == ENOENT) return "no such file: " + path;
    if (err == ELOOP) return path + " cannot be opened: its symbolic links form a loop (or nest too deep)";
    return path + " cannot be opened: " + std::strerror(err);
  }
  if (S_ISDIR(st.st_mode)) return path + " is a directory, not a checkpoint file";
  if (!S_ISREG(st.st_mode)) {
    std::error_code ec;
    std::string target;
    if (std::filesystem::is_symlink(path, ec)) {
      auto real = std::filesystem::canonical(path, ec);
      if (!ec) target = ", " + real.string();
    }
    return path + " is not a regular file (" + KindOf(st.st_mode) + target + ")";
  }
  if (st.st_size == 0) {
    // /proc and /sys files report a size of 0 and yet have content: they are generated on
    // each read, not stored, and are no checkpoint either.
    char byte = 0;
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return path + " cannot be opened: " + std::strerror(errno);
    errno = 0;
    const bool has_content = std::fread(&byte, 1, 1, f) == 1;
    const int err = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (has_content) return path + " is not a regular file on disk (it reports a size of 0 but has content, as /proc and /sys files do)";
    if (err != 0) {
      return path + " is not a regular file on disk: it reports a size of 0 and reading it fails (" + std::strerror(err) +
             "), as special files such as /proc/self/mem do";
    }
    return path + " is empty";
  }
  if (size != nullptr) *size = static_cast<uint64_t>(st.st_size);
  return "";
}

}  // namespace gd::checkpoints
