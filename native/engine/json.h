// A small strict JSON (RFC 8259) parser and pretty printer, for config.json, safetensors headers, adapter
// configs and checkpoint metadata. Written for this engine (no third-party code).
// Simplifications: numbers are held as double, plus an exact int64 when the literal is an integer; objects
// keep their keys in order and a lookup returns the last duplicate (Python's json behaves the same way);
// nesting deeper than 512 levels is rejected rather than risking the stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace qt::json {

enum class Type { Null, Bool, Number, String, Array, Object };

struct Value {
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  bool is_int = false;  // the literal had no fraction/exponent and fits int64
  int64_t integer = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  bool is_null() const { return type == Type::Null; }
  bool is_bool() const { return type == Type::Bool; }
  bool is_number() const { return type == Type::Number; }
  bool is_string() const { return type == Type::String; }
  bool is_array() const { return type == Type::Array; }
  bool is_object() const { return type == Type::Object; }

  /** Member of an object (last one when duplicated), or nullptr when missing or this is not an object. */
  const Value* find(const std::string& key) const;

  // Builders (for writing).
  static Value null() { return Value(); }
  static Value from_bool(bool b);
  static Value from_int(int64_t i);
  static Value from_double(double d);
  static Value from_float(float f);  // shortest decimal that reads back as the same float (0.1f -> 0.1)
  static Value from_string(std::string s);
  static Value new_array();
  static Value new_object();
  Value& set(const std::string& key, Value v);  // appends (object); returns *this for chaining
  Value& push(Value v);                         // appends (array)
};

/** Parses one JSON document (leading/trailing whitespace allowed, nothing else). On error throws
 *  qt::Error(BadFile) "<what>: invalid JSON at byte N: <reason>". */
Value parse(const char* data, size_t size, const std::string& what);
inline Value parse(const std::string& text, const std::string& what) { return parse(text.data(), text.size(), what); }

/** Serialises with 2-space indentation (indent < 0: compact, one line). */
std::string dump(const Value& v, int indent = 2);

/** A JSON string literal with quotes and escapes. */
std::string quote(const std::string& s);

}  // namespace qt::json
