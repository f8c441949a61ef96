// Which kind of checkpoint a file is, from its first bytes, never from its name: a file named
// .bin may be safetensors, one named .safetensors may be a torch.save zip.
#pragma once

#include <string>

namespace gd::checkpoints {

enum class Format {
  Zip,          // a zip archive: a torch.save file (data.pkl) or a TorchScript module (code/)
  Pickle,       // a pickle: torch.save's old format (_use_new_zipfile_serialization=False)
  Safetensors,  // an 8-byte header length, then a JSON object
  Unknown,
};

// Reads the first bytes of path (a regular file: check FileProblem first). For Unknown, *head
// gets the first bytes in hex, for the error message.
Format SniffFormat(const std::string& path, std::string* head = nullptr);

const char* FormatName(Format f);

}  // namespace gd::checkpoints
