#pragma once
// Writing output files so that nobody ever sees half of one: the bytes go to a temporary file in
// the destination's directory, which is renamed over the destination only once everything was
// written (rename() within one directory replaces atomically). A failure leaves the destination as
// it was and removes the temporary file. Several AtomicFiles committed one after the other give a
// set of outputs that appears only when every member could be written (write them all, then commit
// them all), and check_output_path lets a caller find an unusable destination before doing the
// work whose result it is.
//
// Every failure is a RuntimeError naming the destination.

#include <filesystem>
#include <string>
#include <string_view>

namespace attnc {

// Checks that a file can be written at `path` without writing it: its directory exists and is a
// directory this process may create files in, and `path` is not itself a directory.
void check_output_path(const std::filesystem::path& path);

// Checks that `directory` is, or can be created as, a directory this process may create files in:
// an existing directory that is writable, or a missing one whose nearest existing ancestor is.
void check_output_directory(const std::filesystem::path& directory);

// One output file being written. The temporary file exists from construction until commit() or
// destruction; the destination is touched only by commit().
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);  // creates the temporary file (mode 0666 & ~umask)
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  AtomicFile(const AtomicFile&) = delete;
  ~AtomicFile();  // removes the temporary file unless committed

  // Appends `bytes` to the temporary file.
  void write(std::string_view bytes);
  // Flushes the temporary file and renames it over the destination. At most once.
  void commit();

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path target_;  // path_ with symbolic links resolved: what commit() replaces
  std::filesystem::path temp_;    // empty for a special file written in place, and once committed
  int fd_ = -1;
};

// AtomicFile in one call: `path` holds exactly `bytes` afterwards, or is unchanged.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace attnc
