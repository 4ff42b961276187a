/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: internals shared by the pair_pol_*.cpp files of PairPolBase.
   The names of the compiled model's inputs, outputs and metadata, and small string helpers.
------------------------------------------------------------------------- */

#ifndef LMP_PAIR_POL_UTIL_H
#define LMP_PAIR_POL_UTIL_H

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

// constexpr: const, so each file that includes this header has its own copy and no
// unused-variable warning for the names it does not use
constexpr const char *KEY_POS = "pos";
constexpr const char *KEY_EDGE_INDEX = "edge_index";
constexpr const char *KEY_ATOM_TYPES = "atom_types";
constexpr const char *KEY_FIELD = "electric_field";
constexpr const char *KEY_ATOMIC_FIELD = "atomic_electric_field";
constexpr const char *KEY_CELL = "cell";
constexpr const char *KEY_ENERGY = "atomic_energy";
constexpr const char *KEY_FORCES = "forces";
constexpr const char *KEY_VIRIAL = "virial";
constexpr const char *KEY_POL = "polarization";
constexpr const char *KEY_BORN = "born_effective_charges";
constexpr const char *KEY_ALPHA = "polarizability";
constexpr const char *KEY_DIPOLES = "atomic_dipoles";
constexpr const char *META_INPUTS = "nequip_aoti_inputs";
constexpr const char *META_OUTPUTS = "nequip_aoti_outputs";
constexpr const char *META_OFFSET = "polarization_offset_fractional";

static inline std::vector<std::string> split_words(const std::string &s)
{
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// a whole string as one number (false: not a number)
static inline bool parse_number(const std::string &s, double &value)
{
  if (s.empty()) return false;
  char *end = nullptr;
  value = std::strtod(s.c_str(), &end);
  return end && *end == '\0' && std::isfinite(value);
}

static inline std::string first_line(const char *what)
{
  std::string s(what ? what : "");
  auto pos = s.find('\n');
  return pos == std::string::npos ? s : s.substr(0, pos);
}

#endif
