// Strict JSON parser (recursive descent over RFC 8259's grammar) and printer. Rejects: trailing commas,
// comments, single quotes, NaN/Infinity, leading zeros, control characters in strings, lone surrogates,
// invalid UTF-8 escapes, and anything after the document.
#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "engine.h"

namespace qt::json {

const Value* Value::find(const std::string& key) const {
  if (type != Type::Object) return nullptr;
  for (size_t i = object.size(); i-- > 0;)
    if (object[i].first == key) return &object[i].second;
  return nullptr;
}

Value Value::from_bool(bool b) {
  Value v;
  v.type = Type::Bool;
  v.boolean = b;
  return v;
}

Value Value::from_int(int64_t i) {
  Value v;
  v.type = Type::Number;
  v.is_int = true;
  v.integer = i;
  v.number = static_cast<double>(i);
  return v;
}

Value Value::from_double(double d) {
  Value v;
  v.type = Type::Number;
  v.number = d;
  return v;
}

Value Value::from_float(float f) {
  // Shortest "%.{p}g" that reads back as the same float, stored as that decimal's double.
  char buf[64];
  for (int p = 1; p <= 9; p++) {
    std::snprintf(buf, sizeof buf, "%.*g", p, static_cast<double>(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return from_double(std::strtod(buf, nullptr));
}

Value Value::from_string(std::string s) {
  Value v;
  v.type = Type::String;
  v.string = std::move(s);
  return v;
}

Value Value::new_array() {
  Value v;
  v.type = Type::Array;
  return v;
}

Value Value::new_object() {
  Value v;
  v.type = Type::Object;
  return v;
}

Value& Value::set(const std::string& key, Value v) {
  object.emplace_back(key, std::move(v));
  return *this;
}

Value& Value::push(Value v) {
  array.push_back(std::move(v));
  return *this;
}

// ---- parser ------------------------------------------------------------------------------------------

namespace {

constexpr int kMaxDepth = 512;

class Parser {
 public:
  Parser(const char* data, size_t size, const std::string& what) : p_(data), begin_(data), end_(data + size), what_(what) {}

  Value document() {
    skip_ws();
    Value v = value(0);
    skip_ws();
    if (p_ != end_) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  const char* p_;
  const char* begin_;
  const char* end_;
  const std::string& what_;

  [[noreturn]] void fail(const std::string& reason) {
    QT_FAIL(ErrorCode::BadFile, what_ + ": invalid JSON at byte " + std::to_string(p_ - begin_) + ": " + reason);
  }

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) p_++;
  }

  bool literal(const char* word) {
    const char* q = p_;
    for (const char* w = word; *w; w++, q++)
      if (q >= end_ || *q != *w) return false;
    p_ = q;
    return true;
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 512 levels");
    if (p_ >= end_) fail("unexpected end of input");
    char c = *p_;
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value::from_string(string());
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (literal("true")) return Value::from_bool(true);
    if (literal("false")) return Value::from_bool(false);
    if (literal("null")) return Value();
    fail(std::string("unexpected character '") + c + "'");
  }

  Value object(int depth) {
    Value v = Value::new_object();
    p_++;  // {
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      p_++;
      return v;
    }
    for (;;) {
      skip_ws();
      if (p_ >= end_ || *p_ != '"') fail("expected a string key");
      std::string key = string();
      skip_ws();
      if (p_ >= end_ || *p_ != ':') fail("expected ':'");
      p_++;
      skip_ws();
      Value member = value(depth + 1);
      v.object.emplace_back(std::move(key), std::move(member));
      skip_ws();
      if (p_ >= end_) fail("unexpected end of input in an object");
      if (*p_ == ',') {
        p_++;
        continue;
      }
      if (*p_ == '}') {
        p_++;
        return v;
      }
      fail("expected ',' or '}'");
    }
  }

  Value array(int depth) {
    Value v = Value::new_array();
    p_++;  // [
    skip_ws();
    if (p_ < end_ && *p_ == ']') {
      p_++;
      return v;
    }
    for (;;) {
      skip_ws();
      v.array.push_back(value(depth + 1));
      skip_ws();
      if (p_ >= end_) fail("unexpected end of input in an array");
      if (*p_ == ',') {
        p_++;
        continue;
      }
      if (*p_ == ']') {
        p_++;
        return v;
      }
      fail("expected ',' or ']'");
    }
  }

  unsigned hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    unsigned u = 0;
    for (int i = 0; i < 4; i++, p_++) {
      char c = *p_;
      u <<= 4;
      if (c >= '0' && c <= '9') u |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') u |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') u |= static_cast<unsigned>(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return u;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  std::string string() {
    p_++;  // opening quote
    std::string out;
    for (;;) {
      if (p_ >= end_) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        p_++;
        return out;
      }
      if (c < 0x20) fail("control character in a string");
      if (c >= 0x80) {  // raw UTF-8: copy one well-formed sequence
        int extra = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || c == 0xc0 || c == 0xc1 || c > 0xf4) fail("invalid UTF-8");
        if (end_ - p_ <= extra) fail("truncated UTF-8 sequence");
        for (int k = 1; k <= extra; k++)
          if ((static_cast<unsigned char>(p_[k]) & 0xc0) != 0x80) fail("invalid UTF-8");
        out.append(p_, static_cast<size_t>(extra + 1));
        p_ += extra + 1;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        p_++;
        continue;
      }
      p_++;
      if (p_ >= end_) fail("unterminated escape");
      char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff) {  // high surrogate: a low one must follow
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') fail("lone high surrogate");
            p_ += 2;
            unsigned lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            fail("lone low surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  Value number() {
    const char* start = p_;
    bool integral = true;
    if (*p_ == '-') p_++;
    if (p_ >= end_) fail("truncated number");
    if (*p_ == '0') {
      p_++;
      if (p_ < end_ && *p_ >= '0' && *p_ <= '9') fail("leading zero in a number");
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') p_++;
    } else {
      fail("bad number");
    }
    if (p_ < end_ && *p_ == '.') {
      integral = false;
      p_++;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("digit expected after '.'");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') p_++;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      p_++;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) p_++;
      if (p_ >= end_ || *p_ < '0' || *p_ > '9') fail("digit expected in exponent");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') p_++;
    }
    std::string text(start, p_);
    Value v;
    v.type = Type::Number;
    v.number = std::strtod(text.c_str(), nullptr);
    if (!std::isfinite(v.number)) fail("number out of range");
    if (integral) {
      errno = 0;
      long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) {
        v.is_int = true;
        v.integer = i;
      }
    }
    return v;
  }
};

void dump_to(std::string& out, const Value& v, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.type) {
    case Type::Null: out += "null"; return;
    case Type::Bool: out += v.boolean ? "true" : "false"; return;
    case Type::Number: {
      char buf[64];
      if (v.is_int) {
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v.integer));
      } else if (v.number == std::floor(v.number) && std::fabs(v.number) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.1f", v.number);  // 8.0 stays a float for Python readers
      } else {
        for (int p = 1; p <= 17; p++) {  // shortest round-trip representation
          std::snprintf(buf, sizeof buf, "%.*g", p, v.number);
          if (std::strtod(buf, nullptr) == v.number) break;
        }
      }
      out += buf;
      return;
    }
    case Type::String: out += quote(v.string); return;
    case Type::Array:
      if (v.array.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < v.array.size(); i++) {
        if (i) out += ',';
        newline(level + 1);
        dump_to(out, v.array[i], indent, level + 1);
      }
      newline(level);
      out += ']';
      return;
    case Type::Object:
      if (v.object.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < v.object.size(); i++) {
        if (i) out += ',';
        newline(level + 1);
        out += quote(v.object[i].first);
        out += indent < 0 ? ":" : ": ";
        dump_to(out, v.object[i].second, indent, level + 1);
      }
      newline(level);
      out += '}';
      return;
  }
}

}  // namespace

Value parse(const char* data, size_t size, const std::string& what) { return Parser(data, size, what).document(); }

std::string dump(const Value& v, int indent) {
  std::string out;
  dump_to(out, v, indent, 0);
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace qt::json
