/* -*- c++ -*- ----------------------------------------------------------
   nequip_pol: fix efield/born: linear response to a homogeneous field with Born charges of
   the zero-field model (pair allegro/pol or nequip/pol without efield):
   F_ib += sum_a Z*_i,ab E_a, and the enthalpy -E.P added to the energy (fix_modify energy yes).
------------------------------------------------------------------------- */

#ifdef FIX_CLASS
// clang-format off
FixStyle(efield/born,FixEfieldBorn);
// clang-format on
#else

#ifndef LMP_FIX_EFIELD_BORN_H
#define LMP_FIX_EFIELD_BORN_H

#include "fix.h"
#include "pair_pol_base.h"

namespace LAMMPS_NS {

class FixEfieldBorn : public Fix {
 public:
  FixEfieldBorn(class LAMMPS *, int, char **);
  int setmask() override;
  void init() override;
  void setup(int) override;
  void min_setup(int) override;
  void post_force(int) override;
  void min_post_force(int) override;
  double compute_scalar() override;
  double compute_vector(int) override;

 private:
  PairPolBase *pair = nullptr;
  PolFieldComponent spec[3];
  double field[3] = {0, 0, 0};
  double energy = 0.0;
};

}    // namespace LAMMPS_NS

#endif
#endif
