/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: pair style nequip/pol (message-passing field-aware NequIP models).
   As nequip's own LAMMPS interface for message passing: one MPI rank; every neighbor
   (local or ghost image) is mapped to its local atom and the periodic image is passed to
   the model as an edge cell shift with the cell.
------------------------------------------------------------------------- */

#ifdef PAIR_CLASS
// clang-format off
PairStyle(nequip/pol,PairNequIPPol);
// clang-format on
#else

#ifndef LMP_PAIR_NEQUIP_POL_H
#define LMP_PAIR_NEQUIP_POL_H

#include "pair_pol_base.h"

namespace LAMMPS_NS {

class PairNequIPPol : public PairPolBase {
 public:
  PairNequIPPol(class LAMMPS *);
  void settings(int, char **) override;
  void init_style() override;

 protected:
  void check_single_rank();
  std::vector<std::string> required_inputs() const override;
  int build_inputs(std::unordered_map<std::string, at::Tensor> &inputs) override;
};

}    // namespace LAMMPS_NS

#endif
#endif
