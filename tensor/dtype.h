// dtype.h: the element types a heed tensor can hold, and how kernels dispatch on them.
//
// float32 and float64 hold values (float64 is what gradcheck runs in), int64 holds indices and labels,
// and bool holds masks (the result of comparisons). Elementwise ops promote as PyTorch does
// (tensor/kernels/promote.cpp): int64 * int64 is int64, int64 * float32 is float32, float32 + float64 is
// float64; matmul and the other non-elementwise ops want one floating dtype and say so.
#pragma once
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>

#include "tensor/error.h"

namespace heed {

enum class DType : uint8_t { Float32, Float64, Int64, Bool };

inline constexpr DType float32 = DType::Float32;
inline constexpr DType float64 = DType::Float64;
inline constexpr DType int64 = DType::Int64;
inline constexpr DType boolean = DType::Bool;

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
  }
  return "?";
}

/// The dtype PyTorch's type promotion gives two dtypes: bool < int64 < float32 < float64 (torch.promote_types).
DType promote_types(DType a, DType b);

/// Prints the dtype's name, as in a tensor's repr: `std::cout << x.dtype()` shows float32.
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }

// The C++ type behind each dtype, and back.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

// dispatch_floating(dt, op, f) calls f(float{}) or f(double{}); any other dtype is the caller's
// mistake and throws, naming the op. Kernels are templates on T, so this is the one switch they need.
template <class F>
decltype(auto) dispatch_floating(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default:
      throw Error(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(dt));
  }
}

// dispatch_all(dt, f) also covers int64 and bool (for copies, comparisons, printing).
template <class F>
decltype(auto) dispatch_all(DType dt, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int64: return f(int64_t{});
    case DType::Bool: break;
  }
  return f(bool{});
}

}  // namespace heed
