#include "runtime/core/AtomicFile.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "runtime/core/RuntimeError.h"

namespace fs = std::filesystem;

namespace attnc {

namespace {

std::string errno_text(int error) { return std::strerror(error); }

// The directory a file at `path` is created in.
fs::path directory_of(const fs::path& path) {
  fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// Whether `path` names something that exists but is not a regular file or a directory (a device
// such as /dev/null, a pipe such as /dev/stdout): those are written in place, since renaming a file
// over them would replace the device rather than write to it.
bool is_special_file(const fs::path& path) {
  std::error_code error;
  fs::file_status status = fs::status(path, error);  // follows symlinks
  return !error && fs::exists(status) && !fs::is_regular_file(status) && !fs::is_directory(status);
}

void check_directory_writable(const fs::path& directory, const fs::path& for_path) {
  std::error_code error;
  fs::file_status status = fs::status(directory, error);
  std::string what = for_path.empty() ? "" : fmt::format(" (for '{}')", for_path.string());
  if (!fs::exists(status))
    throw RuntimeError(fmt::format("the directory '{}'{} does not exist", directory.string(), what));
  if (!fs::is_directory(status)) {
    throw RuntimeError(fmt::format("'{}'{} is not a directory", directory.string(), what));
  }
  if (::access(directory.c_str(), W_OK | X_OK) != 0) {
    throw RuntimeError(
        fmt::format("cannot create files in the directory '{}'{}: {}", directory.string(), what, errno_text(errno)));
  }
}

// `path` with symbolic links resolved (a link's target is what gets replaced), or as given when
// that fails.
fs::path resolved(const fs::path& path) {
  std::error_code error;
  fs::path out = fs::weakly_canonical(path, error);
  return error || out.empty() ? path : out;
}

}  // namespace

void check_output_path(const fs::path& path) {
  if (path.empty()) throw RuntimeError("an output file name is empty");
  std::error_code error;
  if (fs::is_directory(path, error)) {
    throw RuntimeError(fmt::format("the output '{}' is a directory; give a file name", path.string()));
  }
  if (is_special_file(path)) {
    if (::access(path.c_str(), W_OK) != 0) {
      throw RuntimeError(fmt::format("cannot write the output '{}': {}", path.string(), errno_text(errno)));
    }
    return;
  }
  check_directory_writable(directory_of(resolved(path)), path);
}

void check_output_directory(const fs::path& directory) {
  if (directory.empty()) throw RuntimeError("an output directory name is empty");
  std::error_code error;
  fs::path existing = fs::absolute(directory, error);
  while (!fs::exists(existing, error) && existing.has_parent_path() && existing != existing.parent_path()) {
    existing = existing.parent_path();
  }
  if (fs::exists(existing, error) && !fs::is_directory(existing, error)) {
    throw RuntimeError(fmt::format("cannot create the output directory '{}': '{}' is not a directory",
                                   directory.string(), existing.string()));
  }
  check_directory_writable(existing, existing == fs::absolute(directory, error) ? fs::path() : directory);
}

AtomicFile::AtomicFile(fs::path path) : path_(std::move(path)) {
  if (path_.empty()) throw RuntimeError("an output file name is empty");
  std::error_code error;
  if (fs::is_directory(path_, error)) {
    throw RuntimeError(fmt::format("cannot write '{}': it is a directory", path_.string()));
  }
  if (is_special_file(path_)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd_ < 0) throw RuntimeError(fmt::format("cannot write '{}': {}", path_.string(), errno_text(errno)));
    return;
  }
  // Through a symbolic link, the file it points to is replaced, not the link.
  target_ = resolved(path_);
  static std::atomic<uint64_t> counter{0};
  temp_ = directory_of(target_) / fmt::format(".{}.{}-{}.tmp", target_.filename().string(), ::getpid(), counter++);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    int error_number = errno;
    temp_.clear();
    throw RuntimeError(fmt::format("cannot write '{}': cannot create a file in '{}': {}", path_.string(),
                                   directory_of(target_).string(), errno_text(error_number)));
  }
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)), target_(std::move(other.target_)), temp_(std::move(other.temp_)), fd_(other.fd_) {
  other.fd_ = -1;
  other.temp_.clear();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicFile::write(std::string_view bytes) {
  if (fd_ < 0) throw RuntimeError(fmt::format("'{}' was already written", path_.string()));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw RuntimeError(fmt::format("cannot write '{}': {}", path_.string(), errno_text(n < 0 ? errno : ENOSPC)));
    }
    done += static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw RuntimeError(fmt::format("'{}' was already written", path_.string()));
  int fd = fd_;
  fd_ = -1;
  // close() reports delayed write errors (NFS, a full disk) that write() did not.
  if (::close(fd) != 0) throw RuntimeError(fmt::format("cannot write '{}': {}", path_.string(), errno_text(errno)));
  if (temp_.empty()) return;  // a special file, written in place
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    throw RuntimeError(fmt::format("cannot write '{}': {}", path_.string(), errno_text(errno)));
  }
  temp_.clear();
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace attnc
