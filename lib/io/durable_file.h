// Writing files so that a crash or kill at any moment leaves either the old state or the
// new one, never half a file: write to <path>.tmp, fsync it, rename, fsync the directory.
#pragma once

#include <string>

namespace pptrain {

void write_file_durably(const std::string& path, const std::string& contents);
// fsync a file or a directory by path (directories: so a rename inside it is durable).
void fsync_path(const std::string& path);
// Renames from -> to and fsyncs the parent directory of `to`.
void rename_durably(const std::string& from, const std::string& to);

}  // namespace pptrain
